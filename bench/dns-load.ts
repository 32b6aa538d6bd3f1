/**
 * The DNS load of bench/dns.ts, run inside a container's namespace: `node bench/dns-load.ts SERVER PORT NAME
 * COUNT CONCURRENCY` sends COUNT A queries for NAME from one UDP socket, CONCURRENCY in flight, and prints
 * one JSON line: queries per second, the latency of each answer (ms), and how many got none within 1 s.
 */
import { createSocket } from 'node:dgram';
import { dnsId, dnsQuery, DnsType, encodeDns } from '../src/packet/dns.ts';

const [server, portText, name, countText, concurrencyText] = process.argv.slice(2);
const port = Number(portText);
const count = Number(countText);
const concurrency = Number(concurrencyText);
const socket = createSocket('udp4');
const sentAt = new Map<number, number>();
const latencies: number[] = [];
let sent = 0;
let lost = 0;
let nextId = 0;
let started = 0;

await new Promise<void>((resolve) => {
  const send = (): void => {
    if (sent >= count) {
      if (sentAt.size === 0) resolve();
      return;
    }
    sent++;
    // ids cycle through 16 bits; at most CONCURRENCY are in flight, so none is reused while pending
    const id = nextId++ & 0xffff;
    sentAt.set(id, performance.now());
    socket.send(encodeDns(dnsQuery(id, name!, DnsType.A)), port, server);
  };
  socket.on('message', (message) => {
    const id = dnsId(new Uint8Array(message));
    const at = id === undefined ? undefined : sentAt.get(id);
    if (at === undefined) return;
    sentAt.delete(id!);
    latencies.push(performance.now() - at);
    send();
  });
  // a query with no answer within 1 s counts as lost, and its slot goes to the next one
  setInterval(() => {
    const now = performance.now();
    for (const [id, at] of sentAt) {
      if (now - at < 1_000) continue;
      sentAt.delete(id);
      lost++;
      send();
    }
  }, 100).unref();
  socket.once('listening', () => {
    started = performance.now();
    for (let i = 0; i < concurrency; i++) send();
  });
  socket.bind(0);
});
const seconds = (performance.now() - started) / 1000;
socket.close();
process.stdout.write(`${JSON.stringify({ qps: latencies.length / seconds, latencies, lost })}\n`);
