// Per-client fairness: a client (remote address + the token it presents) has at most a few GraphQL
// requests executing at once; the rest wait in its own bounded queue, and beyond that it is told
// to come back later (HTTP 429 + Retry-After). One client's flood therefore queues behind itself.

export interface ClientLimits {
  /** Requests of one client executing at once. Default 8; 0 turns the gate off. */
  concurrency?: number;
  /** Requests of one client waiting for a slot; one more is refused. Default 1000. */
  queue?: number;
}

/** A place in a client's line: `ready` resolves when it may run; `release()` ends it (or leaves the queue). */
export interface Ticket {
  readonly ready: Promise<void>;
  release(): void;
}

interface ClientState {
  running: number;
  waiting: Array<() => void>;
}

const ADMITTED: Ticket = { ready: Promise.resolve(), release: () => undefined };

export class ClientGate {
  readonly concurrency: number;
  readonly queue: number;
  private readonly clients = new Map<string, ClientState>();
  /** Requests refused since start (for tests and metrics). */
  rejected = 0;

  constructor(limits: ClientLimits = {}) {
    this.concurrency = limits.concurrency ?? 8;
    this.queue = limits.queue ?? 1000;
  }

  /** A ticket for one request of `client`, or null when its queue is full. */
  acquire(client: string): Ticket | null {
    if (this.concurrency <= 0) return ADMITTED;
    let state = this.clients.get(client);
    if (!state) {
      state = { running: 0, waiting: [] };
      this.clients.set(client, state);
    }
    const s = state;
    let admitted = false;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      if (!admitted) {
        const i = s.waiting.indexOf(queuedAdmit);
        if (i >= 0) s.waiting.splice(i, 1);
      } else {
        s.running--;
        const next = s.waiting.shift();
        if (next) next();
      }
      if (s.running === 0 && s.waiting.length === 0) this.clients.delete(client);
    };
    let resolveReady!: () => void;
    const ready = new Promise<void>((r) => (resolveReady = r));
    function admit(queued: boolean): void {
      admitted = true;
      s.running++;
      // A request that waited starts in a later turn of the event loop, not as a microtask of the one
      // that just ended: a queue of requests that never wait on I/O would otherwise run back to back
      // and keep every other socket unread until the whole queue is done.
      if (queued) setImmediate(resolveReady);
      else resolveReady();
    }
    const queuedAdmit = (): void => admit(true);
    if (s.running < this.concurrency) {
      admit(false);
    } else if (s.waiting.length >= this.queue) {
      this.rejected++;
      if (s.running === 0 && s.waiting.length === 0) this.clients.delete(client);
      return null;
    } else {
      s.waiting.push(queuedAdmit);
    }
    return { ready, release: finish };
  }

  /** Requests of `client` executing and waiting (tests). */
  load(client: string): { running: number; waiting: number } {
    const s = this.clients.get(client);
    return { running: s?.running ?? 0, waiting: s?.waiting.length ?? 0 };
  }
}

/** The key a request is counted under: where it comes from and which credential it presents. */
export function clientKey(remoteAddress: string | undefined, role: string | null): string {
  // IPv4-mapped IPv6 (::ffff:127.0.0.1) is the same client as its IPv4 form.
  const addr = (remoteAddress ?? 'unknown').replace(/^::ffff:/, '');
  return `${addr}|${role ?? 'anonymous'}`;
}
