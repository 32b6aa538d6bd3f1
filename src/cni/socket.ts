/**
 * Where the agent serves the CNI plugin unless told otherwise. A module of its own because the CLI's
 * command table needs the path (`vxnet agent --cni-socket`, `vxnet cni config`) on every call, and the
 * rest of the protocol only when a CNI runtime calls.
 */
export const DEFAULT_CNI_SOCKET = '/run/vxnet/cni.sock';
