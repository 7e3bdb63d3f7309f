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
export const FORMAT_VERSION = 3;
export const H_MAGIC = 0;
export const H_VERSION = 4;
export const H_NODE_COUNT = 8;
export const H_NODES_OFF = 12;
export const H_EDGE_CAP = 16;
export const H_EDGES_OFF = 20;
export const H_PAIR_CAP = 24;
export const H_PAIRS_OFF = 28;
export const H_ENTRY_COUNT = 32;
export const H_ENTRIES_OFF = 36;
export const H_PATTERN_COUNT = 40;
export const H_PATTERNS_OFF = 44;
export const H_RULE_COUNT = 48;
export const H_RULES_OFF = 52;
export const H_STRINGS_LEN = 56;
export const H_STRINGS_OFF = 60;
export const H_ID_ROOT = 64;
export const H_OPERATOR_ROOT = 68;
export const H_TOTAL_LEN = 72;
export const IMAGE_HEADER_SIZE = 80;

/** "No such node / pattern". */
export const NONE = 0xffffffff;

// ---- Trie node: 20 bytes ----
// The ID trie holds every SPIFFE pattern of the policy set once (trust domain, then path
// segments); the operator trie holds role / service / action.
export const NODE_SIZE = 20;
export const N_STAR = 0; // child along "*" (exactly one segment)
export const N_GLOB = 4; // ID trie: pattern id of "<path to here>/**" (one or more more segments)
export const N_END = 8; // ID trie: pattern id of the pattern that ends here
export const N_ENTRY_START = 12; // operator trie: first payload entry
export const N_ENTRY_COUNT = 16; // operator trie: number of payload entries

// ---- Path hashes: where a trie node's edge slot and a pattern's pair slots live ----
// Every trie node has a 32-bit path hash, a function of its path alone:
//   ID trie root: ID_SEED; operator trie root: OP_SEED
//   literal child along segment s: segHash(h, s); child along "*": saltHash(h, STAR_SALT)
// segHash (murmur3's block step over the segment's bytes in little-endian 4-byte words, the
// last word zero-padded, then fmix32(h ^ len)):
//   for each word w: k = imul(w, H_C1); k = rotl(k, 15); k = imul(k, H_C2);
//                    h = rotl(h ^ k, 13); h = imul(h, 5) + H_C3
//   h = fmix32(h ^ len);  fmix32(h): h ^= h >>> 16; h = imul(h, H_F1); h ^= h >>> 13; h = imul(h, H_F2); h ^= h >>> 16
//   saltHash(h, salt) = fmix32(h ^ salt)
// Because a literal path's hash depends only on its bytes, the address of every edge slot
// and of the exact (source, destination) pair slot is known from the request alone, not from
// the slot read before it: the processor issues those loads together, and at 100,000 rules
// their cache misses overlap instead of following each other.
export const ID_SEED = 0x5a54b001;
export const OP_SEED = 0x5a54b002;
export const STAR_SALT = 0x2a2a2a2a;
export const GLOB_SALT = 0x2f2a2a2f;
export const H_C1 = 0xcc9e2d51;
export const H_C2 = 0x1b873593;
export const H_C3 = 0xe6546b64;
export const H_F1 = 0x85ebca6b;
export const H_F2 = 0xc2b2ae35;

// ---- Literal-edge hash table: 32-byte slots, open addressing, linear probing ----
// Key: (parent node, segment bytes); home slot: the child's path hash & (capacity - 1).
// A slot also carries the segment's first 8 bytes and the pattern that ends at the child, so
// the last segment of an ID is usually decided by one cache line.
export const SLOT_SIZE = 32;
export const S_PARENT = 0; // NONE = empty slot
export const S_CHILD = 4;
export const S_STR_OFF = 8; // offset into the strings blob
export const S_STR_LEN = 12;
export const S_PREFIX = 16; // the first min(8, len) bytes of the segment, zero-padded (u64)
export const S_END = 24; // the child's N_END pattern id (or NONE)
export const S_END_FLAGS = 28; // that pattern's flags (pattern table), 0 if none

// ---- Pattern table: 4 bytes per pattern: flags ----
// A pattern's key is the path hash of the node it ends at (exact and "*" patterns), or
// saltHash(that node's hash, GLOB_SALT) for "<node>/**".
export const PATTERN_SIZE = 4;
export const P_FROM = 1; // the pattern is the `from` of some service rule (its sources are declared)
export const P_ROLLOUT_SHIFT = 1; // bits 1-2: rollout mode set for destinations it matches
export const P_ROLLOUT_MASK = 3;
// bits 16-31: a source pattern's partner filter: bit (key >>> 28) of every destination
// pattern it has a pair with. A clear bit proves the pair absent without a probe.
export const P_PARTNER_SHIFT = 16;
export const PARTNER_BIT_SHIFT = 28;

// ---- Pair hash table: (source pattern, destination pattern) -> payload entries ----
// 16-byte slots (four to a cache line), open addressing, linear probing. Home slot:
// pairHash(source key, destination key):
//   h = imul(ks, MIX_A) ^ kd; h = imul(h ^ (h >>> 15), MIX_B); h = h ^ (h >>> 13)   (u32)
// A slot is matched by pattern ids, never by hash. A pair with one entry (the common case)
// keeps it in the slot; a pair with several keeps them in the entry table.
export const PAIR_SIZE = 16;
export const PR_SRC = 0; // NONE = empty slot
export const PR_DST = 4;
export const PR_A = 8; // one entry: its ports (as E_PORTS); several: index of the first entry
export const PR_B = 12; // one entry: rule index | PR_DENY; several: PR_MANY | entry count
export const PR_DENY = 0x80000000;
export const PR_MANY = 0x40000000;
export const PR_VALUE_MASK = 0x3fffffff; // rule indexes and counts are below 2^30
export const MIX_A = 0x9e3779b1;
export const MIX_B = 0x85ebca6b;
/** Hash tables are sized to a power of two with a load factor of at most 4/5. */
export const MAX_LOAD_NUM = 4;
export const MAX_LOAD_DEN = 5;

// ---- Payload entry: 12 bytes ----
export const ENTRY_SIZE = 12;
export const E_PORTS = 0; // u16 lo | u16 hi << 16 (service entries; 0 otherwise)
export const E_RULE = 4; // global rule index
export const E_FLAGS = 8;
export const F_DENY = 1; // service entry: DENY rule
export const F_REQUIRE_MFA = 1; // operator entry
export const F_REQUIRE_INCIDENT = 2; // operator entry
export const ROLLOUT_OBSERVE = 1;
export const ROLLOUT_ENFORCE = 2;

/** How many patterns one ID may match before the evaluator gives up (fails closed). */
export const MAX_MATCHED_PATTERNS = 1024;

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
