/**
 * What a host agent made on its host, in `<dataDir>/created.json`: `stacknet host-agent cleanup` removes exactly
 * this (and the VMs its backends list), nothing else. Written before each thing is made, so a crash in between
 * leaves a name to clean, never a thing nobody knows of.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CreatedRecord {
  /** The VM backends that ran here (cleanup asks each for its VMs). */
  backends: ('libvirt' | 'netns')[];
  /** Router namespaces. */
  namespaces: string[];
  /** Host links that are not a network's: the control bridge, routers' outer veth ends. */
  links: string[];
  /** Guest networks' bridges and the device each sits on. */
  networks: Record<string, string>;
  /** Routers by name: their id and namespace. */
  routers: Record<string, { id: number; ns: string }>;
  /** The bridge-family table `stacknet` (the VM ports' anti-spoofing). */
  nftTable: boolean;
  /**
   * Public bridges by name (routers' eth2, eth3... go on them): the device on each, a VLAN sub-interface of the
   * public label made here (`vlanDevice`: deleted with it) or the untagged label (released, never deleted).
   */
  publicBridges: Record<string, { device: string; vlanDevice: boolean }>;
}

export class Created {
  private readonly file: string;

  constructor(dataDir: string) {
    this.file = join(dataDir, 'created.json');
  }

  read(): CreatedRecord {
    let c: Partial<CreatedRecord> = {};
    try {
      c = JSON.parse(readFileSync(this.file, 'utf8')) as Partial<CreatedRecord>;
    } catch {
      /* nothing made yet */
    }
    return {
      backends: c.backends ?? [],
      namespaces: c.namespaces ?? [],
      links: c.links ?? [],
      networks: c.networks ?? {},
      routers: c.routers ?? {},
      nftTable: c.nftTable ?? false,
      publicBridges: c.publicBridges ?? {},
    };
  }

  update(f: (c: CreatedRecord) => void): void {
    const c = this.read();
    f(c);
    writeFileSync(this.file, JSON.stringify(c, null, 2));
  }

  add(kind: 'backends' | 'namespaces' | 'links', name: string): void {
    const c = this.read();
    if ((c[kind] as string[]).includes(name)) return;
    this.update((x) => (x[kind] as string[]).push(name));
  }

  remove(kind: 'namespaces' | 'links', name: string): void {
    this.update((x) => {
      x[kind] = x[kind].filter((n) => n !== name);
    });
  }
}
