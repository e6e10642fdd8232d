// One DNS message in, one out (or none): decoding with dns-packet, header rules, EDNS0 and truncation around the
// pure answerQuestion(). Transport-agnostic and synchronous: server.ts owns the sockets.
import dnsPacket, { type Answer, type Packet } from 'dns-packet';
import { answerQuestion, type DnsSettings, type DnsView } from './answer.js';

export type Transport = 'udp' | 'tcp';

export interface Reply {
  /** The encoded response, or null when the message is dropped (unreadable header, or not a query). */
  response: Buffer | null;
  /** Question type for metrics ("none" when there was no readable question). */
  qtype: string;
  /** Response code for metrics ("dropped" when nothing is sent). */
  rcode: string;
  truncated: boolean;
}

/** Queries are small; anything larger is not a query we answer (also bounds the decoder's work). */
export const MAX_QUERY_BYTES = 4096;
/** The UDP size we offer in our OPT: the DNS flag day 2020 value, safe from IP fragmentation. */
const OUR_UDP_SIZE = 1232;
/** The largest UDP answer we send, whatever the client offers. */
const MAX_UDP_SIZE = 4096;
const CLASSIC_UDP_SIZE = 512;

const FLAG_AA = 1 << 10;
const FLAG_TC = 1 << 9;
const FLAG_RD = 1 << 8;
const FLAG_CD = 1 << 4;
const RCODE = { NOERROR: 0, FORMERR: 1, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
type Rcode = keyof typeof RCODE;
const BADVERS = 16;

const DROPPED: Reply = { response: null, qtype: 'none', rcode: 'dropped', truncated: false };

/** Answers one DNS message. Never throws for any input bytes. */
export function respond(message: Buffer, transport: Transport, view: DnsView, settings: DnsSettings, random?: () => number): Reply {
  if (message.length < 12) return DROPPED;
  const id = message.readUInt16BE(0);
  const flags = message.readUInt16BE(2);
  // A response is never answered: two servers must not bounce errors at each other forever.
  if (flags & 0x8000) return DROPPED;
  const opcode = (flags >> 11) & 0xf;
  const headerOnly = (rcode: Rcode): Reply => ({
    response: dnsPacket.encode({ type: 'response', id, flags: (opcode << 11) | (flags & FLAG_RD) | RCODE[rcode], questions: [] }),
    qtype: 'none',
    rcode,
    truncated: false,
  });
  if (opcode !== 0) return headerOnly('NOTIMP');
  const [qd, an, ns, ar] = [message.readUInt16BE(4), message.readUInt16BE(6), message.readUInt16BE(8), message.readUInt16BE(10)];
  // A query asks one question and carries no answers; a few additionals at most (OPT, a TSIG we ignore). Checked
  // before decoding, so hostile counts never reach the decoder.
  if (qd !== 1 || an !== 0 || ns !== 0 || ar > 4 || message.length > MAX_QUERY_BYTES) return headerOnly('FORMERR');
  let query: Packet;
  try {
    query = dnsPacket.decode(message);
  } catch {
    return headerOnly('FORMERR');
  }
  const question = query.questions?.[0];
  // dns-packet decodes labels as UTF-8 joined by "."; a name outside printable ASCII would not encode back to
  // the same bytes, and no such name exists in the zone.
  if (!question || !/^[\x21-\x7e]+$/.test(question.name)) return headerOnly('FORMERR');
  const opts = (query.additionals ?? []).filter((a) => a.type === 'OPT');
  if (opts.length > 1) return headerOnly('FORMERR');
  const opt = opts[0] as { udpPayloadSize?: number; ednsVersion?: number } | undefined;

  const base = (flags & (FLAG_RD | FLAG_CD)) | (opcode << 11);
  const reply = (packet: Omit<Packet, 'type' | 'id' | 'flags' | 'questions'>, rcode: Rcode, aa: boolean, extendedRcode = 0): Reply => {
    const additionals = [...(packet.additionals ?? [])];
    if (opt) additionals.push(optRecord(extendedRcode));
    const full: Packet = {
      type: 'response',
      id,
      flags: base | (aa ? FLAG_AA : 0) | RCODE[rcode],
      questions: [question],
      answers: packet.answers ?? [],
      authorities: packet.authorities ?? [],
      additionals,
    };
    const limit = transport === 'tcp' ? 65535 : opt ? Math.min(Math.max(opt.udpPayloadSize ?? 0, CLASSIC_UDP_SIZE), MAX_UDP_SIZE) : CLASSIC_UDP_SIZE;
    const rcodeLabel = extendedRcode ? 'BADVERS' : rcode;
    // Encode first and size after: almost every answer fits, and sizing costs as much as encoding.
    const encoded = dnsPacket.encode(full);
    if (encoded.length <= limit) return { response: encoded, qtype: question.type, rcode: rcodeLabel, truncated: false };
    const fitted = fit(full, limit, opt !== undefined);
    return { response: dnsPacket.encode(fitted.packet), qtype: question.type, rcode: rcodeLabel, truncated: fitted.truncated };
  };

  if (opt && (opt.ednsVersion ?? 0) > 0) return reply({}, 'NOERROR', false, BADVERS >> 4);
  // dns-packet cannot encode a class it has no name for, so such a question is not echoed.
  if (question.class?.startsWith('UNKNOWN_')) return headerOnly('REFUSED');
  if (question.class !== undefined && question.class !== 'IN' && question.class !== 'ANY') return reply({}, 'REFUSED', false);
  // No zone transfers: the zone is the live registry, read it through the API's watch instead.
  if (question.type === 'AXFR' || question.type === 'IXFR') return reply({}, 'REFUSED', false);

  const result = answerQuestion({ name: question.name, type: question.type }, view, settings, random);
  return reply(result, result.rcode, result.authoritative);
}

function optRecord(extendedRcode: number): Answer {
  return { name: '.', type: 'OPT', udpPayloadSize: OUR_UDP_SIZE, extendedRcode, ednsVersion: 0, flags: 0, options: [] } as unknown as Answer;
}

/**
 * Makes a response that is too large fit limit bytes: first the additional section goes (optional data, RFC 2181 §9: no TC for
 * it); if the answers still do not fit, TC=1 with as many whole answers as fit and no authority, so the client
 * retries over TCP.
 */
function fit(packet: Packet, limit: number, keepOpt: boolean): { packet: Packet; truncated: boolean } {
  const opt = keepOpt ? packet.additionals!.filter((a) => a.type === 'OPT') : [];
  const lean: Packet = { ...packet, additionals: opt };
  if (dnsPacket.encodingLength(lean) <= limit) return { packet: lean, truncated: false };
  const answers = packet.answers ?? [];
  const sized = (n: number): Packet => ({ ...lean, flags: (packet.flags ?? 0) | FLAG_TC, answers: answers.slice(0, n), authorities: [] });
  // The largest n whose packet fits; n = 0 always fits (a question of at most 255 bytes plus header and OPT).
  let lo = 0;
  let hi = answers.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (dnsPacket.encodingLength(sized(mid)) <= limit) lo = mid;
    else hi = mid - 1;
  }
  return { packet: sized(lo), truncated: true };
}
