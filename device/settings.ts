/**
 * Runtime settings: what the `config` command may change (CONTRACT.md), persisted in
 * the data directory so a restart keeps them. Checked by the command's own JSON Schema,
 * key by key when read back: a damaged file loses only its bad keys.
 */
import path from 'node:path';
import { readJsonFile, writeFileAtomic } from '../lib/index.js';
import { commandArgsSchemas } from './contract/index.js';
import type { Contract, CommandArgs } from './contract/index.js';

export type RuntimeSettings = Required<CommandArgs['config']>;

/** The keys of `raw` that the `config` command's schema accepts. */
export function validSettings(contract: Contract, raw: unknown): Partial<RuntimeSettings> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return {};
  const out: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(commandArgsSchemas.config.properties)) {
    const v = (raw as Record<string, unknown>)[key];
    if (v !== undefined && contract.compile(schema)(v)) out[key] = v;
  }
  return out as Partial<RuntimeSettings>;
}

export class SettingsStore {
  private current: RuntimeSettings;
  private readonly file: string;

  constructor(
    private readonly contract: Contract,
    dataDir: string,
    defaults: RuntimeSettings,
  ) {
    this.current = defaults;
    this.file = path.join(dataDir, 'settings.json');
  }

  get value(): RuntimeSettings {
    return this.current;
  }

  /** Settings changed by the `config` command survive a restart. */
  async load(): Promise<RuntimeSettings> {
    const saved = await readJsonFile<unknown>(this.file, { maxBytes: 4096, quarantine: true }).catch(() => null);
    this.current = { ...this.current, ...validSettings(this.contract, saved) };
    return this.current;
  }

  async apply(patch: Partial<RuntimeSettings>): Promise<RuntimeSettings> {
    this.current = { ...this.current, ...patch };
    await writeFileAtomic(this.file, JSON.stringify(this.current));
    return this.current;
  }
}
