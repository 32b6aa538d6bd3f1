/** Whether `host` is a loopback address: `vxnet ui` serves the dashboard nowhere else (server.ts says why). */
export function isLoopback(host: string | undefined): boolean {
  return host !== undefined && (/^127(\.\d{1,3}){3}$/.test(host) || host === '::1');
}
