/* The C509 registries of draft-ietf-cose-cbor-encoded-cert (IANA considerations): RDN
 * attributes, extensions, extended key usages, certificate policies, policy qualifiers,
 * information access methods, otherName types, signature and public key algorithms. OIDs
 * are DER content octets; algorithm identifiers are whole DER AlgorithmIdentifiers, so a
 * certificate's bytes match an entry only when the parameters are exactly the registered
 * ones (the others are carried as ~oid / [~oid, parameters]). */
#include "c509_internal.h"

#include <string.h>

#include <openssl/obj_mac.h>

#define OIDB(s) (const uint8_t *)(s), sizeof(s) - 1

static const c509_attr_entry attr_registry[] = {
    {{0, OIDB("\x2a\x86\x48\x86\xf7\x0d\x01\x09\x01"), "emailAddress"}, true},
    {{1, OIDB("\x55\x04\x03"), "CN"}, false},
    {{2, OIDB("\x55\x04\x04"), "SN"}, false},
    {{3, OIDB("\x55\x04\x05"), "serialNumber"}, false},
    {{4, OIDB("\x55\x04\x06"), "C"}, false},
    {{5, OIDB("\x55\x04\x07"), "L"}, false},
    {{6, OIDB("\x55\x04\x08"), "ST"}, false},
    {{7, OIDB("\x55\x04\x09"), "street"}, false},
    {{8, OIDB("\x55\x04\x0a"), "O"}, false},
    {{9, OIDB("\x55\x04\x0b"), "OU"}, false},
    {{10, OIDB("\x55\x04\x0c"), "title"}, false},
    {{11, OIDB("\x55\x04\x0f"), "businessCategory"}, false},
    {{12, OIDB("\x55\x04\x11"), "postalCode"}, false},
    {{13, OIDB("\x55\x04\x2a"), "GN"}, false},
    {{14, OIDB("\x55\x04\x2b"), "initials"}, false},
    {{15, OIDB("\x55\x04\x2c"), "generationQualifier"}, false},
    {{16, OIDB("\x55\x04\x2e"), "dnQualifier"}, false},
    {{17, OIDB("\x55\x04\x41"), "pseudonym"}, false},
    {{18, OIDB("\x55\x04\x61"), "organizationIdentifier"}, false},
    {{19, OIDB("\x2b\x06\x01\x04\x01\x82\x37\x3c\x02\x01\x01"), "jurisdictionL"}, false},
    {{20, OIDB("\x2b\x06\x01\x04\x01\x82\x37\x3c\x02\x01\x02"), "jurisdictionST"}, false},
    {{21, OIDB("\x2b\x06\x01\x04\x01\x82\x37\x3c\x02\x01\x03"), "jurisdictionC"}, false},
    {{22, OIDB("\x09\x92\x26\x89\x93\xf2\x2c\x64\x01\x19"), "DC"}, true},
    {{25, OIDB("\x55\x04\x29"), "name"}, false},
    {{26, OIDB("\x55\x04\x14"), "telephoneNumber"}, false},
    {{27, OIDB("\x55\x04\x36"), "dmdName"}, false},
    {{28, OIDB("\x09\x92\x26\x89\x93\xf2\x2c\x64\x01\x01"), "UID"}, false},
    {{29, OIDB("\x2a\x86\x48\x86\xf7\x0d\x01\x09\x02"), "unstructuredName"}, false},
    /* The registry's DER column for 30 reads 06 0A ... 09 08 00, which is not the OID
     * 1.2.840.113549.1.9.8 of its OID column; we use the OID column (docs/c509.md). */
    {{30, OIDB("\x2a\x86\x48\x86\xf7\x0d\x01\x09\x08"), "unstructuredAddress"}, false},
};

static const c509_oid_entry ext_registry[] = {
    {C509_EXT_CODE_SKI, OIDB("\x55\x1d\x0e"), "subjectKeyIdentifier"},
    {C509_EXT_CODE_KU, OIDB("\x55\x1d\x0f"), "keyUsage"},
    {C509_EXT_CODE_SAN, OIDB("\x55\x1d\x11"), "subjectAltName"},
    {C509_EXT_CODE_BC, OIDB("\x55\x1d\x13"), "basicConstraints"},
    {C509_EXT_CODE_CRLDP, OIDB("\x55\x1d\x1f"), "cRLDistributionPoints"},
    {C509_EXT_CODE_CP, OIDB("\x55\x1d\x20"), "certificatePolicies"},
    {C509_EXT_CODE_AKI, OIDB("\x55\x1d\x23"), "authorityKeyIdentifier"},
    {C509_EXT_CODE_EKU, OIDB("\x55\x1d\x25"), "extKeyUsage"},
    {C509_EXT_CODE_AIA, OIDB("\x2b\x06\x01\x05\x05\x07\x01\x01"), "authorityInfoAccess"},
    {C509_EXT_CODE_SDA, OIDB("\x55\x1d\x09"), "subjectDirectoryAttributes"},
    {C509_EXT_CODE_IAN, OIDB("\x55\x1d\x12"), "issuerAltName"},
    {C509_EXT_CODE_NC, OIDB("\x55\x1d\x1e"), "nameConstraints"},
    {C509_EXT_CODE_PM, OIDB("\x55\x1d\x21"), "policyMappings"},
    {C509_EXT_CODE_PC, OIDB("\x55\x1d\x24"), "policyConstraints"},
    {C509_EXT_CODE_FRESHEST_CRL, OIDB("\x55\x1d\x2e"), "freshestCRL"},
    {C509_EXT_CODE_INHIBIT_ANY, OIDB("\x55\x1d\x36"), "inhibitAnyPolicy"},
    {C509_EXT_CODE_SIA, OIDB("\x2b\x06\x01\x05\x05\x07\x01\x0b"), "subjectInfoAccess"},
    {C509_EXT_CODE_IP_ADDR, OIDB("\x2b\x06\x01\x05\x05\x07\x01\x07"), "id-pe-ipAddrBlocks"},
    {C509_EXT_CODE_AS_IDS, OIDB("\x2b\x06\x01\x05\x05\x07\x01\x08"), "id-pe-autonomousSysIds"},
    {C509_EXT_CODE_IP_ADDR_V2, OIDB("\x2b\x06\x01\x05\x05\x07\x01\x1c"), "id-pe-ipAddrBlocks-v2"},
    {C509_EXT_CODE_AS_IDS_V2, OIDB("\x2b\x06\x01\x05\x05\x07\x01\x1d"),
     "id-pe-autonomousSysIds-v2"},
    {C509_EXT_CODE_OCSP_NOCHECK, OIDB("\x2b\x06\x01\x05\x05\x07\x30\x01\x05"),
     "id-pkix-ocsp-nocheck"},
    {C509_EXT_CODE_PRECERT_SIGNING, OIDB("\x2b\x06\x01\x04\x01\xd6\x79\x02\x04\x03"),
     "precertificateSigning"},
    {C509_EXT_CODE_TLS_FEATURE, OIDB("\x2b\x06\x01\x05\x05\x07\x01\x18"), "id-pe-tlsfeature"},
};

static const c509_oid_entry eku_registry[] = {
    {0, OIDB("\x55\x1d\x25\x00"), "anyExtendedKeyUsage"},
    {1, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x01"), "serverAuth"},
    {2, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x02"), "clientAuth"},
    {3, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x03"), "codeSigning"},
    {4, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x04"), "emailProtection"},
    {8, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x08"), "timeStamping"},
    {9, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x09"), "OCSPSigning"},
    {10, OIDB("\x2b\x06\x01\x05\x02\x03\x04"), "pkInitClientAuth"},
    {11, OIDB("\x2b\x06\x01\x05\x02\x03\x05"), "pkInitKDC"},
    {12, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x15"), "secureShellClient"},
    {13, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x16"), "secureShellServer"},
    {14, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x23"), "bundleSecurity"},
    {15, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x1b"), "cmcCA"},
    {16, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x1c"), "cmcRA"},
    {17, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x1d"), "cmcArchive"},
    {18, OIDB("\x2b\x06\x01\x05\x05\x07\x03\x20"), "cmKGA"},
    {19, OIDB("\x2b\x06\x01\x04\x01\xd6\x79\x02\x04\x04"), "certificateTransparency"},
    {20, OIDB("\x2b\x06\x01\x04\x01\x82\xe4\x25\x01"), "wisunFanDevice"},
};

static const c509_oid_entry cp_registry[] = {
    {0, OIDB("\x55\x1d\x20\x00"), "anyPolicy"},
    {1, OIDB("\x67\x81\x0c\x01\x02\x01"), "domain-validated"},
    {2, OIDB("\x67\x81\x0c\x01\x02\x02"), "organization-validated"},
    {3, OIDB("\x67\x81\x0c\x01\x02\x03"), "individual-validated"},
    {4, OIDB("\x67\x81\x0c\x01\x01"), "ev-guidelines"},
    {7, OIDB("\x2b\x06\x01\x05\x05\x07\x0e\x02"), "id-cp-ipAddr-asNumber"},
    {8, OIDB("\x2b\x06\x01\x05\x05\x07\x0e\x03"), "id-cp-ipAddr-asNumber-v2"},
    {24, OIDB("\x67\x81\x12\x01\x02\x01\x00"), "id-rspRole-ci"},
    {25, OIDB("\x67\x81\x12\x01\x02\x01\x01"), "id-rspRole-euicc-v2"},
    {26, OIDB("\x67\x81\x12\x01\x02\x01\x00\x00\x00\x00\x00"), "id-rspRole-euicc"},
    {27, OIDB("\x67\x81\x12\x01\x02\x01\x02"), "id-rspRole-eum-v2"},
    {28, OIDB("\x67\x81\x12\x01\x02\x01\x00\x00\x00"), "id-rspRole-eum"},
    {29, OIDB("\x67\x81\x12\x01\x02\x01\x03"), "id-rspRole-dp-tls-v2"},
    {30, OIDB("\x67\x81\x12\x01\x02\x01\x00\x00\x01\x00"), "id-rspRole-dp-tls"},
    {31, OIDB("\x67\x81\x12\x01\x02\x01\x04"), "id-rspRole-dp-auth-v2"},
    {32, OIDB("\x67\x81\x12\x01\x02\x01\x00\x00\x01\x01"), "id-rspRole-dp-auth"},
    {33, OIDB("\x67\x81\x12\x01\x02\x01\x05"), "id-rspRole-dp-pb-v2"},
    {34, OIDB("\x67\x81\x12\x01\x02\x01\x00\x00\x01\x02"), "id-rspRole-dp-pb"},
    {35, OIDB("\x67\x81\x12\x01\x02\x01\x06"), "id-rspRole-ds-tls-v2"},
    {36, OIDB("\x67\x81\x12\x01\x02\x01\x00\x00\x02\x00"), "id-rspRole-ds-tls"},
    {37, OIDB("\x67\x81\x12\x01\x02\x01\x07"), "id-rspRole-ds-auth-v2"},
    {38, OIDB("\x67\x81\x12\x01\x02\x01\x00\x00\x02\x01"), "id-rspRole-ds-auth"},
};

static const c509_oid_entry pq_registry[] = {
    {C509_CERT_POLICY_QUALIFIER_CPS, OIDB("\x2b\x06\x01\x05\x05\x07\x02\x01"), "cps"},
    {C509_CERT_POLICY_QUALIFIER_UNOTICE, OIDB("\x2b\x06\x01\x05\x05\x07\x02\x02"), "unotice"},
};

static const c509_oid_entry ia_registry[] = {
    {1, OIDB("\x2b\x06\x01\x05\x05\x07\x30\x01"), "OCSP"},
    {2, OIDB("\x2b\x06\x01\x05\x05\x07\x30\x02"), "caIssuers"},
    {3, OIDB("\x2b\x06\x01\x05\x05\x07\x30\x03"), "timeStamping"},
    {5, OIDB("\x2b\x06\x01\x05\x05\x07\x30\x05"), "caRepository"},
    {10, OIDB("\x2b\x06\x01\x05\x05\x07\x30\x0a"), "rpkiManifest"},
    {11, OIDB("\x2b\x06\x01\x05\x05\x07\x30\x0b"), "signedObject"},
    {13, OIDB("\x2b\x06\x01\x05\x05\x07\x30\x0d"), "rpkiNotify"},
};

static const c509_oid_entry other_name_registry[] = {
    {C509_GN_CODE_MAC_ADDRESS, OIDB("\x2b\x06\x01\x05\x05\x07\x08\x0c"), "MACAddress"},
    {C509_GN_CODE_SMTP_UTF8, OIDB("\x2b\x06\x01\x05\x05\x07\x08\x09"), "SmtpUTF8Mailbox"},
    {C509_GN_CODE_HW_MODULE, OIDB("\x2b\x06\x01\x05\x05\x07\x08\x04"), "hardwareModuleName"},
};

#define PSS_ALG(h, salt)                                                                           \
    OIDB("\x30\x41\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0a\x30\x34\xa0\x0f\x30\x0d\x06\x09"    \
         "\x60\x86\x48\x01\x65\x03\x04\x02" h "\x05\x00\xa1\x1c\x30\x1a\x06\x09\x2a\x86\x48\x86"   \
         "\xf7\x0d\x01\x01\x08\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02" h "\x05\x00\xa2"   \
         "\x03\x02\x01" salt)

static const c509_sig_entry sig_registry[] = {
    {-256, OIDB("\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x05\x05\x00"),
     "sha1WithRSAEncryption", C509_SIGK_RSA_PKCS1, "SHA1"},
    {-255, OIDB("\x30\x09\x06\x07\x2a\x86\x48\xce\x3d\x04\x01"), "ecdsa-with-SHA1", C509_SIGK_ECDSA,
     "SHA1"},
    {0, OIDB("\x30\x0a\x06\x08\x2a\x86\x48\xce\x3d\x04\x03\x02"), "ecdsa-with-SHA256",
     C509_SIGK_ECDSA, "SHA256"},
    {1, OIDB("\x30\x0a\x06\x08\x2a\x86\x48\xce\x3d\x04\x03\x03"), "ecdsa-with-SHA384",
     C509_SIGK_ECDSA, "SHA384"},
    {2, OIDB("\x30\x0a\x06\x08\x2a\x86\x48\xce\x3d\x04\x03\x04"), "ecdsa-with-SHA512",
     C509_SIGK_ECDSA, "SHA512"},
    /* ECDSA-Sig-Value signatures whose verification OpenSSL does not offer here (md NULL) */
    {3, OIDB("\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x06\x20"), "id-ecdsa-with-shake128",
     C509_SIGK_ECDSA, NULL},
    {4, OIDB("\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x06\x21"), "id-ecdsa-with-shake256",
     C509_SIGK_ECDSA, NULL},
    {5, OIDB("\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x06\x24"), "id-alg-unsigned",
     C509_SIGK_OTHER, NULL},
    {8, OIDB("\x30\x0a\x06\x08\x2a\x81\x1c\xcf\x55\x01\x83\x75"), "sm2-with-sm3", C509_SIGK_ECDSA,
     NULL},
    {12, OIDB("\x30\x05\x06\x03\x2b\x65\x70"), "Ed25519", C509_SIGK_EDDSA, NULL},
    {13, OIDB("\x30\x05\x06\x03\x2b\x65\x71"), "Ed448", C509_SIGK_EDDSA, NULL},
    {14, OIDB("\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x06\x1a"), "sa-ecdhPop-sha256-hmac-sha256",
     C509_SIGK_OTHER, NULL},
    {15, OIDB("\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x06\x1b"), "sa-ecdhPop-sha384-hmac-sha384",
     C509_SIGK_OTHER, NULL},
    {16, OIDB("\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x06\x1c"), "sa-ecdhPop-sha512-hmac-sha512",
     C509_SIGK_OTHER, NULL},
    {23, OIDB("\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0b\x05\x00"),
     "sha256WithRSAEncryption", C509_SIGK_RSA_PKCS1, "SHA256"},
    {24, OIDB("\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0c\x05\x00"),
     "sha384WithRSAEncryption", C509_SIGK_RSA_PKCS1, "SHA384"},
    {25, OIDB("\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x0d\x05\x00"),
     "sha512WithRSAEncryption", C509_SIGK_RSA_PKCS1, "SHA512"},
    {26, PSS_ALG("\x01", "\x20"), "RSASSA-PSS-SHA256", C509_SIGK_RSA_PSS, "SHA256"},
    {27, PSS_ALG("\x02", "\x30"), "RSASSA-PSS-SHA384", C509_SIGK_RSA_PSS, "SHA384"},
    {28, PSS_ALG("\x03", "\x40"), "RSASSA-PSS-SHA512", C509_SIGK_RSA_PSS, "SHA512"},
    {29, OIDB("\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x06\x1e"), "id-RSASSA-PSS-SHAKE128",
     C509_SIGK_OTHER, NULL},
    {30, OIDB("\x30\x0a\x06\x08\x2b\x06\x01\x05\x05\x07\x06\x1f"), "id-RSASSA-PSS-SHAKE256",
     C509_SIGK_OTHER, NULL},
};

static const c509_pk_entry pk_registry[] = {
    {0, OIDB("\x30\x0d\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01\x05\x00"), "RSA", C509_PKK_RSA,
     NID_undef, 0, 0},
    {1,
     OIDB("\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x08\x2a\x86\x48\xce\x3d\x03\x01"
          "\x07"),
     "EC P-256", C509_PKK_EC, NID_X9_62_prime256v1, 32, 32},
    {2, OIDB("\x30\x10\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x05\x2b\x81\x04\x00\x22"),
     "EC P-384", C509_PKK_EC, NID_secp384r1, 48, 48},
    {3, OIDB("\x30\x10\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x05\x2b\x81\x04\x00\x23"),
     "EC P-521", C509_PKK_EC, NID_secp521r1, 66, 66},
    {6,
     OIDB("\x30\x13\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x08\x2a\x81\x1c\xcf\x55\x01\x82"
          "\x2d"),
     "EC sm2p256v1", C509_PKK_EC, NID_sm2, 32, 32},
    {8, OIDB("\x30\x05\x06\x03\x2b\x65\x6e"), "X25519", C509_PKK_RAW, NID_undef, 0, 0},
    {9, OIDB("\x30\x05\x06\x03\x2b\x65\x6f"), "X448", C509_PKK_RAW, NID_undef, 0, 0},
    {12, OIDB("\x30\x05\x06\x03\x2b\x65\x70"), "Ed25519", C509_PKK_RAW, NID_undef, 0, 0},
    {13, OIDB("\x30\x05\x06\x03\x2b\x65\x71"), "Ed448", C509_PKK_RAW, NID_undef, 0, 0},
    {24,
     OIDB("\x30\x14\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x09\x2b\x24\x03\x03\x02\x08\x01"
          "\x01\x07"),
     "EC brainpoolP256r1", C509_PKK_EC, NID_brainpoolP256r1, 32, 32},
    {25,
     OIDB("\x30\x14\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x09\x2b\x24\x03\x03\x02\x08\x01"
          "\x01\x0b"),
     "EC brainpoolP384r1", C509_PKK_EC, NID_brainpoolP384r1, 48, 48},
    {26,
     OIDB("\x30\x14\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x09\x2b\x24\x03\x03\x02\x08\x01"
          "\x01\x0d"),
     "EC brainpoolP512r1", C509_PKK_EC, NID_brainpoolP512r1, 64, 64},
    /* OpenSSL has no FRP256v1: its keys are kept uncompressed */
    {27,
     OIDB("\x30\x15\x06\x07\x2a\x86\x48\xce\x3d\x02\x01\x06\x0a\x2a\x81\x7a\x01\x81\x5f\x65"
          "\x82\x00\x01"),
     "EC FRP256v1", C509_PKK_EC, NID_undef, 32, 32},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void registry_table(c509_registry reg, const c509_oid_entry **tab, size_t *n, size_t *stride)
{
    *stride = sizeof(c509_oid_entry);
    switch (reg) {
    case C509_REG_ATTR:
        *tab = &attr_registry[0].e;
        *n = COUNT(attr_registry);
        *stride = sizeof(c509_attr_entry);
        return;
    case C509_REG_EXT:
        *tab = ext_registry;
        *n = COUNT(ext_registry);
        return;
    case C509_REG_EKU:
        *tab = eku_registry;
        *n = COUNT(eku_registry);
        return;
    case C509_REG_CP:
        *tab = cp_registry;
        *n = COUNT(cp_registry);
        return;
    case C509_REG_PQ:
        *tab = pq_registry;
        *n = COUNT(pq_registry);
        return;
    case C509_REG_IA:
        *tab = ia_registry;
        *n = COUNT(ia_registry);
        return;
    case C509_REG_OTHER_NAME:
        *tab = other_name_registry;
        *n = COUNT(other_name_registry);
        return;
    }
    *tab = NULL;
    *n = 0;
}

static const c509_oid_entry *registry_at(const c509_oid_entry *tab, size_t stride, size_t i)
{
    return (const c509_oid_entry *)((const uint8_t *)tab + i * stride);
}

const c509_oid_entry *c509_reg_by_code(c509_registry reg, int64_t code)
{
    const c509_oid_entry *tab;
    size_t n, stride;
    registry_table(reg, &tab, &n, &stride);
    for (size_t i = 0; i < n; i++)
        if (registry_at(tab, stride, i)->code == code)
            return registry_at(tab, stride, i);
    return NULL;
}

const c509_oid_entry *c509_reg_by_oid(c509_registry reg, const uint8_t *oid, size_t len)
{
    const c509_oid_entry *tab;
    size_t n, stride;
    registry_table(reg, &tab, &n, &stride);
    for (size_t i = 0; i < n; i++) {
        const c509_oid_entry *e = registry_at(tab, stride, i);
        if (e->oid_len == len && memcmp(e->oid, oid, len) == 0)
            return e;
    }
    return NULL;
}

const c509_attr_entry *c509_attr_by_code(int64_t code)
{
    return (const c509_attr_entry *)c509_reg_by_code(C509_REG_ATTR, code);
}

const c509_attr_entry *c509_attr_by_oid(const uint8_t *oid, size_t len)
{
    return (const c509_attr_entry *)c509_reg_by_oid(C509_REG_ATTR, oid, len);
}

const c509_sig_entry *c509_sig_by_code(int64_t code)
{
    for (size_t i = 0; i < COUNT(sig_registry); i++)
        if (sig_registry[i].code == code)
            return &sig_registry[i];
    return NULL;
}

const c509_sig_entry *c509_sig_by_der(const uint8_t *der, size_t len)
{
    for (size_t i = 0; i < COUNT(sig_registry); i++)
        if (sig_registry[i].der_len == len && memcmp(sig_registry[i].der, der, len) == 0)
            return &sig_registry[i];
    return NULL;
}

const c509_pk_entry *c509_pk_by_code(int64_t code)
{
    for (size_t i = 0; i < COUNT(pk_registry); i++)
        if (pk_registry[i].code == code)
            return &pk_registry[i];
    return NULL;
}

const c509_pk_entry *c509_pk_by_der(const uint8_t *der, size_t len)
{
    for (size_t i = 0; i < COUNT(pk_registry); i++)
        if (pk_registry[i].der_len == len && memcmp(pk_registry[i].der, der, len) == 0)
            return &pk_registry[i];
    return NULL;
}
