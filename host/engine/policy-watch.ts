// Long polls on the active policy version: a caller that knows some versions waits until a
// version it does not know is active (a swap on this replica, whatever caused it: an API
// write, a file change, or another replica's write arriving through the store), or until
// its wait ends. Built on the store's public current()/onSwap() only. Waiters are plain
// records in a Set with one timer each: a held poll costs its socket and a few hundred
// bytes here, and a swap releases every waiter in one pass.
import type { ActivePolicies } from "./policy-store.js";

/** What PolicyWatch needs of the policy store. */
export interface SwapSource {
  current(): ActivePolicies | null;
  onSwap(listener: (a: ActivePolicies) => void): void;
}

/** Something that says when the caller went away (a ServerResponse: "close"). */
export interface Closable {
  once(event: "close", listener: () => void): unknown;
  off(event: "close", listener: () => void): unknown;
}

interface Waiter {
  readonly known: readonly string[];
  readonly resolve: (a: ActivePolicies | null) => void;
  timer: NodeJS.Timeout | null;
  closable: Closable | null;
  onClose: (() => void) | null;
}

export class PolicyWatch {
  private readonly waiters = new Set<Waiter>();
  private closed = false;
  /** Waiters released by a swap since start (metrics). */
  released = 0;

  constructor(private readonly source: SwapSource) {
    source.onSwap((a) => this.swapped(a));
  }

  /** Polls held right now. */
  get waiting(): number {
    return this.waiters.size;
  }

  /**
   * The active module if its version is not in `known`, at once; otherwise the first one
   * activated within `ms` whose version is not in `known`; null when the wait ends, the
   * watch closes, or `until` closes (the caller went away: its waiter goes at once) first.
   */
  wait(known: readonly string[], ms: number, until?: Closable): Promise<ActivePolicies | null> {
    const now = this.source.current();
    if (now !== null && !known.includes(now.version)) return Promise.resolve(now);
    if (ms <= 0 || this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const w: Waiter = { known, resolve, timer: null, closable: until ?? null, onClose: null };
      w.timer = setTimeout(() => this.release(w, null), ms);
      if (until) {
        w.onClose = () => this.release(w, null);
        until.once("close", w.onClose);
      }
      this.waiters.add(w);
    });
  }

  /** Releases every held poll (304 for their callers): the engine is shutting down. */
  close(): void {
    this.closed = true;
    for (const w of [...this.waiters]) this.release(w, null);
  }

  private swapped(a: ActivePolicies): void {
    for (const w of this.waiters) {
      if (w.known.includes(a.version)) continue;
      this.released++;
      this.release(w, a);
    }
  }

  private release(w: Waiter, a: ActivePolicies | null): void {
    if (!this.waiters.delete(w)) return;
    if (w.timer !== null) clearTimeout(w.timer);
    if (w.closable !== null && w.onClose !== null) w.closable.off("close", w.onClose);
    w.resolve(a);
  }
}
