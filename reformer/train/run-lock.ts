/**
 * The lock that makes one process the only writer of a run directory: `run.lock`, created
 * exclusively (O_EXCL), holds the owner's pid, host and process start time. A lock whose process is
 * gone (same host, pid dead or reused) is stale and reclaimed; a live or foreign-host one refuses the
 * second writer with a message naming it. Readers (eval, generate, plot) never take it.
 */
import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

export const RUN_LOCK = 'run.lock';

export interface LockOwner {
  readonly pid: number;
  readonly host: string;
  /** Kernel start time of the process (Linux /proc), so a reused pid is not mistaken for the owner. */
  readonly procStart?: string;
  readonly startedAt: string;
  /** Random per acquisition: tells this holder's lock from a later one. */
  readonly token: string;
}

export class RunLockedError extends Error {
  override readonly name = 'RunLockedError';
}

function processStart(pid: number): string | undefined {
  try {
    // Field 22 of /proc/PID/stat; the command name (field 2) may contain spaces, so split after ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function isAlive(owner: LockOwner): boolean {
  try {
    process.kill(owner.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const start = processStart(owner.pid);
  return owner.procStart === undefined || start === undefined || start === owner.procStart;
}

function readOwner(path: string): LockOwner | undefined {
  try {
    const o = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockOwner>;
    if (typeof o.pid === 'number' && typeof o.host === 'string' && typeof o.token === 'string') return o as LockOwner;
  } catch {
    /* missing or torn: see the caller */
  }
  return undefined;
}

const describe = (o: LockOwner) => `pid ${o.pid} on ${o.host}, since ${o.startedAt}`;

export class RunLock {
  private released = false;

  private constructor(
    readonly path: string,
    readonly owner: LockOwner,
    /** Set when a stale lock was reclaimed: whose it was. */
    readonly reclaimed: LockOwner | undefined,
  ) {}

  /**
   * Takes the lock of run directory `dir` (which must exist). Throws RunLockedError naming the
   * holder when another live process has it.
   */
  static acquire(dir: string): RunLock {
    const path = join(dir, RUN_LOCK);
    const procStart = processStart(process.pid);
    const owner: LockOwner = {
      pid: process.pid,
      host: hostname(),
      ...(procStart !== undefined ? { procStart } : {}),
      startedAt: new Date().toISOString(),
      token: randomBytes(8).toString('hex'),
    };
    let reclaimed: LockOwner | undefined;
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        writeFileSync(path, `${JSON.stringify(owner)}\n`, { flag: 'wx' });
        return new RunLock(path, owner, reclaimed);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot create the run lock '${path}': ${(e as Error).message}`);
      }
      const holder = readOwner(path);
      if (holder === undefined) {
        // Being written right now by another process (or torn by a crash at creation): look again.
        if (attempt < 4) {
          sleepMs(50);
          continue;
        }
        throw new RunLockedError(`run directory '${dir}' has an unreadable lock file ${RUN_LOCK}; if no training runs there, delete it`);
      }
      if (holder.host !== owner.host) {
        throw new RunLockedError(`run directory '${dir}' is locked by ${describe(holder)} (another host); if that training is over, delete ${path}`);
      }
      if (isAlive(holder)) throw new RunLockedError(`run directory '${dir}' is in use by another training (${describe(holder)}); wait for it or choose another --out`);
      // Stale: move it aside under a unique name, then check that what moved is the stale lock and not
      // a fresh one another process created in between (then put it back and give way).
      const aside = `${path}.stale-${owner.token}`;
      try {
        renameSync(path, aside);
      } catch {
        continue; // someone else moved it first
      }
      const moved = readOwner(aside);
      if (moved !== undefined && moved.token !== holder.token) {
        try {
          linkSync(aside, path);
        } catch {
          /* a third process holds it now; ours was the stale one's successor and is lost either way */
        }
        rmSync(aside, { force: true });
        throw new RunLockedError(`run directory '${dir}' is in use by another training (${describe(moved)}); wait for it or choose another --out`);
      }
      rmSync(aside, { force: true });
      reclaimed = holder;
    }
    throw new RunLockedError(`run directory '${dir}': could not take the lock ${RUN_LOCK} (contended); try again`);
  }

  /** Throws unless this process still holds the lock (guards every write against a stolen lock). */
  assertHeld(): void {
    const now = readOwner(this.path);
    if (this.released || now === undefined || now.token !== this.owner.token) {
      throw new RunLockedError(`lost the run lock ${this.path} (another process took it); stopping without writing`);
    }
  }

  /** Removes the lock if it is still ours. Synchronous, so it also works from a signal handler. */
  release(): void {
    if (this.released) return;
    this.released = true;
    if (readOwner(this.path)?.token === this.owner.token) rmSync(this.path, { force: true });
  }
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
