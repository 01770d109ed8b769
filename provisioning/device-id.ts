/**
 * A box's deviceId when its provisioning file names none: from the board, so that it is
 * the same after a reboot, a re-provisioning and a reinstall on a new SD card.
 *
 *   1. the device tree's `serial-number` (Raspberry Pi and most ARM boards),
 *   2. `/proc/cpuinfo`'s `Serial` line (older Pi kernels),
 *   3. `/etc/machine-id` (any systemd machine; new with each fresh OS image, so a reinstall
 *      changes it — documented in docs/provisioning.md).
 *
 * The result fits the contract's pattern `^[a-z0-9][a-z0-9-]{2,63}$`: `ep-` and the serial
 * in lower-case hex (leading zeros kept: the serial as printed on the board's label), or
 * `ep-m-` and the first 16 hex digits of the machine id.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';

export interface DeviceIdPaths {
  /** The host root (tests: a temp tree). */
  root: string;
}

const read = async (f: string): Promise<string | null> => readFile(f, 'utf8').catch(() => null);
const clean = (s: string): string => s.replace(/\0/g, '').trim().toLowerCase();
/** Serials a board reports when it has none. */
const EMPTY = /^0*$/;

export async function deriveDeviceId(p: DeviceIdPaths): Promise<{ id: string; source: 'serial' | 'machine-id' }> {
  const at = (...q: string[]): string => path.join(p.root, ...q);
  for (const f of [at('sys', 'firmware', 'devicetree', 'base', 'serial-number'), at('proc', 'device-tree', 'serial-number')]) {
    const s = await read(f);
    if (s !== null && /^[0-9a-f]{4,32}$/.test(clean(s)) && !EMPTY.test(clean(s))) return { id: `ep-${clean(s)}`, source: 'serial' };
  }
  const cpuinfo = await read(at('proc', 'cpuinfo'));
  const serial = cpuinfo ? /^Serial\s*:\s*([0-9a-fA-F]{4,32})\s*$/m.exec(cpuinfo)?.[1] : undefined;
  if (serial && !EMPTY.test(serial)) return { id: `ep-${serial.toLowerCase()}`, source: 'serial' };
  const mid = await read(at('etc', 'machine-id'));
  if (mid !== null && /^[0-9a-f]{32}$/.test(clean(mid))) return { id: `ep-m-${clean(mid).slice(0, 16)}`, source: 'machine-id' };
  throw new Error('no deviceId in the file and none derivable: no board serial (device tree, /proc/cpuinfo) and no /etc/machine-id; put "deviceId" in the provisioning file');
}
