/**
 * The builder's interfaces: what it needs from the manifold (BuildHost), how it is configured
 * (BuilderOptions), what a build request carries, and the build facts a release records
 * (BuildMeta). Types only, so the manifold and the API server import them without the builder.
 */
import type { LogHub } from '../logs/hub';
import type { Release } from '../store/store';
import type { Launcher } from '../supervisor/types';
import type { BuildLimits } from './limits';

export interface BuildMeta {
  slugBytes: number;
  buildMs: number;
  buildpacks: string[];
}

/** What the builder needs from the manifold (implemented by Manifold). */
export interface BuildHost {
  checkApp(name: unknown): Promise<string>;
  currentRelease(name: string): Promise<Release | undefined>;
  appBuildpacks(name: string): Promise<string[]>;
  setAppBuildpacks(name: string, refs: string[]): Promise<string[]>;
  urlOf(app: string): string;
  /**
   * Places the slug written at `tempDir`, runs `beforeRelease` (the release phase) with its final
   * directory and the config it will run with, then creates the release and hands it to the fleet.
   * A throw anywhere creates nothing and drops the slug unless another release shares it.
   */
  releaseBuiltSlug(
    name: string,
    o: { tempDir: string; sha256: string; bytes: number; procfile: Record<string, string>; description: string; by: string; build: BuildMeta; beforeRelease?: (slugDir: string, config: Record<string, string>) => Promise<void> },
  ): Promise<Release>;
}

export interface BuilderOptions {
  stateDir: string;
  host: BuildHost;
  launcher: Launcher;
  logs: LogHub;
  /** The daemon's dyno network: with 'bridge', builds reach out only where the runtime has NAT. */
  net: 'none' | 'bridge';
  /** Roots of the installed buildpacks, in detection order. */
  installed: string[];
  limits?: Partial<BuildLimits>;
}

export interface BuildRequest {
  app?: unknown;
  dir?: unknown;
  version?: unknown;
  description?: unknown;
  user?: unknown;
  /**
   * The release's author as the caller knows it (the push hook: `key NAME` for an ssh push). Taken
   * only from root, whose word the daemon trusts anyway; anyone else's build is by its own user name.
   */
  by?: unknown;
  /** Who is on the API connection: the source is read as this user. */
  requester?: { uid: number; gid: number };
}
