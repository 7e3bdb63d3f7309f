// The binary layout of a ZT policy module: the ONE place it is written in code.
// This file is valid TypeScript and valid AssemblyScript: the compiler (TypeScript) imports
// it to write images, the evaluator (AssemblyScript) imports it to read them.
// docs/module-format.md explains it in prose. All integers are little-endian.

// ---- Link header: a fixed low address below the AssemblyScript memoryBase (1024) ----
export const LINK_HEADER_ADDR = 256;
export const LINK_MAGIC = 0x484c545a; // "ZTLH"
export const LH_MAGIC = 0;
export const LH_IMAGE_PTR = 4;
export const LH_IMAGE_LEN = 8;
export const LINK_HEADER_SIZE = 16;
/** Gap left between the evaluator's heap base and the image, for start-up allocations. */
export const IMAGE_GAP = 65536;

// ---- Image header (offsets from the image start) ----
export const IMAGE_MAGIC = 0x4d49545a; // "ZTIM"
export const FORMAT_VERSION = 1;
export const H_MAGIC = 0;
export const H_VERSION = 4;
export const H_NODE_COUNT = 8;
export const H_NODES_OFF = 12;
export const H_HASH_CAP = 16;
export const H_HASH_OFF = 20;
export const H_ENTRY_COUNT = 24;
export const H_ENTRIES_OFF = 28;
export const H_RULE_COUNT = 32;
export const H_RULES_OFF = 36;
export const H_STRINGS_LEN = 40;
export const H_STRINGS_OFF = 44;
export const H_SERVICE_ROOT = 48;
export const H_OPERATOR_ROOT = 52;
export const H_ROLLOUT_ROOT = 56;
export const H_TOTAL_LEN = 60;
export const IMAGE_HEADER_SIZE = 64;

/** "No such node". */
export const NONE = 0xffffffff;

// ---- Trie node: 24 bytes ----
export const NODE_SIZE = 24;
export const N_STAR = 0; // child for "*": exactly one segment
export const N_GLOB = 4; // node reached by "**" (one or more segments) and the end of the ID
export const N_END = 8; // node reached at the end of the ID
export const N_ENTRY_START = 12; // first payload entry
export const N_ENTRY_COUNT = 16; // number of payload entries
export const N_RESERVED = 20;

// ---- Literal-edge hash table: 16-byte slots, open addressing, linear probing ----
// Key: (parent node, segment bytes). hash = fnv1a32 seeded with the parent id, see hashSegment.
export const SLOT_SIZE = 16;
export const S_PARENT = 0; // NONE = empty slot
export const S_CHILD = 4;
export const S_STR_OFF = 8; // offset into the strings blob
export const S_STR_LEN = 12;
export const FNV_OFFSET = 0x811c9dc5;
export const FNV_PRIME = 0x01000193;

// ---- Payload entry: 12 bytes ----
export const ENTRY_SIZE = 12;
export const E_PORTS = 0; // u16 lo | u16 hi << 16 (service entries; 0 otherwise)
export const E_RULE = 4; // global rule index (rollout entries: 0)
export const E_FLAGS = 8;
export const F_DENY = 1; // service entry: DENY rule
export const F_REQUIRE_MFA = 1; // operator entry
export const F_REQUIRE_INCIDENT = 2; // operator entry
export const ROLLOUT_OBSERVE = 1; // rollout entry flags = mode
export const ROLLOUT_ENFORCE = 2;

// ---- Rule table: 8 bytes per rule: the `<policy>/<rule>` id in the strings blob ----
export const RULE_SIZE = 8;
export const R_STR_OFF = 0;
export const R_STR_LEN = 4;

// ---- Evaluation result (i32) ----
// bits 0-3 reason code (compiler/model.ts Reason), bits 4-5 rollout mode (0 none, 1 observe,
// 2 enforce), bits 6-31 rule index + 1 (0 = no rule).
export const RESULT_REASON_MASK = 15;
export const RESULT_ROLLOUT_SHIFT = 4;
export const RESULT_RULE_SHIFT = 6;

// Reason codes, as in compiler/model.ts.
export const REASON_ALLOWED_BY_RULE = 0;
export const REASON_DENIED_BY_RULE = 1;
export const REASON_DEFAULT_DENY = 2;
export const REASON_SOURCE_UNDECLARED = 3;
export const REASON_CONDITION_MFA = 4;
export const REASON_CONDITION_INCIDENT = 5;
export const REASON_INVALID_REQUEST = 6;
export const REASON_ROLE_UNDECLARED = 7;
export const REASON_INTERNAL_ERROR = 8;

// ---- Operator request encoding in the I/O buffer ----
// service NUL action NUL role NUL role ... (no trailing NUL); flags: bit 0 mfa, bit 1 incident active.
export const OP_FLAG_MFA = 1;
export const OP_FLAG_INCIDENT = 2;

// ---- SPIFFE limits (SPIFFE ID spec) ----
export const MAX_ID_BYTES = 2048;
export const MAX_TRUST_DOMAIN_BYTES = 255;
/** I/O buffer the host writes requests into (two IDs of MAX_ID_BYTES, or an operator request). */
export const IO_BUFFER_SIZE = 16384;
