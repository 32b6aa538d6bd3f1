/**
 * A one-question DNS client on vxnet's codec, for the tests and the bench: they ask from inside a container's
 * namespace (`ip netns exec NS node src/agent/dns/query.ts SERVER NAME [TYPE] [--tcp]`), where no resolver
 * library is configured to reach the gateway. Prints the decoded answer as JSON, or {"timeout":true}; with
 * `--every=MS`, one line per answer for as long as it runs.
 */
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { decodeDns, dnsQuery, DnsType, DNS_PORT, encodeDns, frameTcp, TcpMessageReader, type DnsMessage } from '../../packet/dns.ts';

export interface QueryOptions {
  port?: number;
  tcp?: boolean;
  timeoutMs?: number;
}

/** Asks `server` about `name`; the decoded answer, or undefined when none came in time. */
export function queryDns(server: string, name: string, type: number, options: QueryOptions = {}): Promise<DnsMessage | undefined> {
  const id = Math.floor(Math.random() * 0x10000);
  const bytes = encodeDns(dnsQuery(id, name, type));
  const port = options.port ?? DNS_PORT;
  const timeoutMs = options.timeoutMs ?? 2_000;
  return new Promise((resolve) => {
    let finish: () => void = () => {};
    let finished = false;
    const done = (answer: DnsMessage | undefined): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      finish();
      resolve(answer);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    if (options.tcp) {
      const reader = new TcpMessageReader();
      const socket = connect({ host: server, port }, () => socket.write(frameTcp(bytes)));
      finish = () => socket.destroy();
      socket.on('error', () => done(undefined));
      socket.on('data', (chunk) => {
        const [message] = reader.push(new Uint8Array(chunk));
        if (message) done(decodeDns(message));
      });
    } else {
      const socket = createSocket(server.includes(':') ? 'udp6' : 'udp4');
      finish = () => socket.close();
      socket.on('error', () => done(undefined));
      socket.on('message', (message) => {
        try {
          const answer = decodeDns(new Uint8Array(message));
          if (answer.id === id) done(answer);
        } catch {
          // not an answer we can read: keep waiting for one
        }
      });
      socket.send(bytes, port, server);
    }
  });
}

if (import.meta.main) {
  const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const flag = (name: string): string | undefined => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const [server, name, typeName = 'A'] = args;
  const type = DnsType[typeName as keyof typeof DnsType];
  if (server === undefined || name === undefined || type === undefined) {
    process.stderr.write('usage: query.ts SERVER NAME [A|AAAA|PTR|...] [--tcp] [--port=N] [--every=MS]\n');
    process.exit(2);
  }
  const options: QueryOptions = { tcp: process.argv.includes('--tcp'), ...(flag('port') ? { port: Number(flag('port')) } : {}) };
  const every = flag('every');
  if (every === undefined) {
    const answer = await queryDns(server, name, type, options);
    process.stdout.write(`${JSON.stringify(answer ?? { timeout: true })}\n`);
  } else {
    // one line per answer, with the time it came: a test watches a name change without starting a process per query
    for (;;) {
      const answer = await queryDns(server, name, type, { ...options, timeoutMs: 1_000 });
      const line = answer ? { t: Date.now(), rcode: answer.rcode, addresses: answer.answers.map((r) => r.address ?? r.target) } : { t: Date.now(), timeout: true };
      process.stdout.write(`${JSON.stringify(line)}\n`);
      await new Promise((r) => setTimeout(r, Number(every)));
    }
  }
}
