/**
 * A pcap stream read as it arrives (tcpdump -w - writes whole records, but a pipe hands them over in
 * arbitrary pieces): complete records are decoded with the codec of src/packet/pcap.ts, the rest waits.
 */
import { pcapRecords, PCAP_GLOBAL_HEADER_LENGTH, PCAP_RECORD_HEADER_LENGTH, readPcapHeader, type PcapHeader, type PcapRecord } from '../packet/pcap.ts';

export class PcapStream {
  #pending: Buffer = Buffer.alloc(0);
  #headerBytes: Buffer | undefined;
  header: PcapHeader | undefined;

  /** Takes the next piece; returns the records it completed. Throws on a stream that is not pcap. */
  push(chunk: Uint8Array): PcapRecord[] {
    this.#pending = this.#pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#pending, chunk]);
    if (!this.header) {
      if (this.#pending.length < PCAP_GLOBAL_HEADER_LENGTH) return [];
      this.#headerBytes = this.#pending.subarray(0, PCAP_GLOBAL_HEADER_LENGTH);
      this.header = readPcapHeader(this.#headerBytes);
      this.#pending = this.#pending.subarray(PCAP_GLOBAL_HEADER_LENGTH);
    }
    // the whole records at the front
    let end = 0;
    while (this.#pending.length - end >= PCAP_RECORD_HEADER_LENGTH) {
      const length = this.header.littleEndian ? this.#pending.readUInt32LE(end + 8) : this.#pending.readUInt32BE(end + 8);
      if (this.#pending.length - end - PCAP_RECORD_HEADER_LENGTH < length) break;
      end += PCAP_RECORD_HEADER_LENGTH + length;
    }
    if (end === 0) return [];
    const complete = Buffer.concat([this.#headerBytes!, this.#pending.subarray(0, end)]);
    this.#pending = this.#pending.subarray(end);
    return [...pcapRecords(complete)];
  }

  /** Bytes of an unfinished record at the end (a capture cut short). */
  get leftover(): number {
    return this.#pending.length;
  }
}
