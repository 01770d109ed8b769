export { TsAudit } from './audit.js';
export type { TsAuditSnapshot } from './audit.js';
export { TsMerger } from './merger.js';
export { PACKETS_PER_MESSAGE, SRT_MESSAGE_SIZE, TS_PACKET_SIZE, TsPacketizer, nullPacket } from './packetizer.js';
