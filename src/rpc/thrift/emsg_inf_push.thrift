// Push service of the Go sara, kept wire-compatible (docs/protocol.md §6): served on
// `nodeaddr` with the framed transport and the binary protocol. Each content is a full packet
// JSON string; `licence` must equal `accesstoken`.

service emsg_inf_push {
  string process(1: string licence, 2: string sn, 3: string content)
  string process_batch(1: string licence, 2: string sn, 3: list<string> contents)
}
