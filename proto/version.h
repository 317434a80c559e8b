/* version — the broker's release version, reported by /health. */
#ifndef PROTO_VERSION_H
#define PROTO_VERSION_H
#define MESHBROKER_VERSION "0.1.0"
#endif
