/**
 * A fake host in a temp directory: the files a box has under /sys, /proc, /run and /var
 * (LEDs, the Pi firmware's throttled flags, DRM connectors, V4L2 nodes, ALSA lists…),
 * written where lib/host-paths.ts looks once EP_HOST_ROOT points at it. The builders
 * below take their paths from host-paths.ts itself, so the tree and the code agree.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { hostPaths, type HostPaths } from '../../lib/index.js';

/** Path (relative to the host root, e.g. `sys/class/leds/ACT/trigger`) → file text. */
export type HostFiles = Record<string, string>;

/** The relative form of a host path, as host-paths.ts spells it. */
const REL = hostPaths({ EP_HOST_ROOT: '/' });
const rel = (abs: string): string => path.relative('/', abs);

export class HostTree {
  readonly paths: HostPaths;

  private constructor(readonly root: string) {
    this.paths = hostPaths({ EP_HOST_ROOT: root });
  }

  /** A new tree with `files` written and `dirs` created. */
  static async create(files: HostFiles = {}, dirs: string[] = []): Promise<HostTree> {
    const t = new HostTree(await mkdtemp(path.join(tmpdir(), 'ep-host-')));
    await t.write(files);
    for (const d of dirs) await t.mkdir(d);
    return t;
  }

  /** The environment that points host-paths.ts at this tree. */
  get env(): { EP_HOST_ROOT: string } {
    return { EP_HOST_ROOT: this.root };
  }

  async write(files: HostFiles): Promise<void> {
    for (const [p, text] of Object.entries(files)) {
      const abs = path.join(this.root, p);
      await mkdir(path.dirname(abs), { recursive: true });
      await writeFile(abs, text);
    }
  }

  async mkdir(p: string): Promise<void> {
    await mkdir(path.join(this.root, p), { recursive: true });
  }

  async remove(p: string): Promise<void> {
    await rm(path.join(this.root, p), { recursive: true, force: true });
  }

  async cleanup(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }
}

/** Trees made by one test file, removed together: `const trees = hostTrees(); afterAll(trees.cleanup)`. */
export function hostTrees(): { make(files?: HostFiles, dirs?: string[]): Promise<HostPaths>; tree(files?: HostFiles, dirs?: string[]): Promise<HostTree>; cleanup(): Promise<void> } {
  const made: HostTree[] = [];
  const tree = async (files: HostFiles = {}, dirs: string[] = []): Promise<HostTree> => {
    const t = await HostTree.create(files, dirs);
    made.push(t);
    return t;
  };
  return {
    tree,
    make: async (files, dirs) => (await tree(files, dirs)).paths,
    cleanup: async () => {
      await Promise.all(made.splice(0).map((t) => t.cleanup()));
    },
  };
}

/** Builders of the files one device leaves on a host. */
export const sysfs = {
  /** An LED under /sys/class/leds: its trigger list (the current one in brackets) and brightness. */
  led: (name: string, o: { trigger?: string; brightness?: string } = {}): HostFiles => ({
    [rel(path.join(REL.ledsClass, name, 'trigger'))]: o.trigger ?? 'none timer [mmc0] heartbeat\n',
    [rel(path.join(REL.ledsClass, name, 'brightness'))]: o.brightness ?? '0\n',
  }),
  /** The Pi firmware's throttled flags as the kernel prints them (bare hex, e.g. `50005\n`). */
  throttled: (text: string): HostFiles => ({ [rel(REL.throttled)]: text }),
  /** A DRM connector (e.g. `card1-HDMI-A-1`) with its status and mode list. */
  drm: (connector: string, status: string, modes = ''): HostFiles => ({
    [rel(path.join(REL.drmClass, connector, 'status'))]: `${status}\n`,
    [rel(path.join(REL.drmClass, connector, 'modes'))]: modes,
  }),
  /** A V4L2 node (e.g. `video0`) with its name and index. */
  v4l2: (node: string, name: string, index = 0): HostFiles => ({
    [rel(path.join(REL.video4linuxClass, node, 'name'))]: `${name}\n`,
    [rel(path.join(REL.video4linuxClass, node, 'index'))]: `${index}\n`,
  }),
  /** /proc/asound/pcm and, optionally, /proc/asound/cards. */
  asound: (pcm: string, cards?: string): HostFiles => ({ [rel(REL.asoundPcm)]: pcm, ...(cards === undefined ? {} : { [rel(REL.asoundCards)]: cards }) }),
  /** The device-tree model (Pi and other ARM boards), NUL-terminated as the kernel writes it. */
  model: (text: string): HostFiles => ({ [rel(REL.deviceTreeModel)]: `${text}\0` }),
  /** systemd-timesyncd's marker that the clock is synchronized. */
  timesynced: (): HostFiles => ({ [rel(REL.timesyncSynchronized)]: '' }),
};
