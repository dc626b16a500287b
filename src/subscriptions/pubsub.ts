// A typed in-process pubsub whose subscribers each get a bounded buffer. A subscriber that falls
// further behind than its buffer is closed with SlowSubscriberError (it reconnects and gets the
// current state first), so a slow client can never grow the server's memory without bound.

export class SlowSubscriberError extends Error {
  override name = 'SlowSubscriberError';
  constructor(bufferSize: number) {
    super(`subscriber fell more than ${bufferSize} events behind and was closed; subscribe again to catch up`);
  }
}

interface Subscriber<T> {
  push(value: T): void;
}

export const DEFAULT_SUBSCRIBER_BUFFER = 256;

/** Topics map a name (or a template such as `operation:${string}`) to the payload type. */
export class PubSub<Topics extends Record<string, unknown>> {
  private readonly subscribers = new Map<string, Set<Subscriber<unknown>>>();

  publish<K extends keyof Topics & string>(topic: K, payload: Topics[K]): void {
    const subs = this.subscribers.get(topic);
    if (!subs) return;
    for (const s of [...subs]) s.push(payload);
  }

  subscriberCount(topic?: keyof Topics & string): number {
    if (topic !== undefined) return this.subscribers.get(topic)?.size ?? 0;
    let n = 0;
    for (const s of this.subscribers.values()) n += s.size;
    return n;
  }

  /**
   * Subscribes to a topic. Delivery starts at once (before the first next()), so a caller can
   * subscribe, then read the current state, and miss nothing in between.
   */
  subscribe<K extends keyof Topics & string>(
    topic: K,
    opts: { bufferSize?: number; signal?: AbortSignal } = {},
  ): AsyncIterableIterator<Topics[K]> {
    const bufferSize = opts.bufferSize ?? DEFAULT_SUBSCRIBER_BUFFER;
    const queue: Topics[K][] = [];
    let waiting: ((r: IteratorResult<Topics[K]>) => void) | null = null;
    let failWaiting: ((e: Error) => void) | null = null;
    let failure: Error | null = null;
    let done = false;

    const set = this.subscribers.get(topic) ?? new Set();
    this.subscribers.set(topic, set);

    const unsubscribe = () => {
      set.delete(sub as Subscriber<unknown>);
      if (set.size === 0 && this.subscribers.get(topic) === set) this.subscribers.delete(topic);
    };
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      failure = err;
      queue.length = 0;
      unsubscribe();
      if (waiting) {
        const [w, f] = [waiting, failWaiting];
        waiting = failWaiting = null;
        if (err) f?.(err);
        else w({ value: undefined, done: true });
      }
    };
    const sub: Subscriber<Topics[K]> = {
      push(value) {
        if (done) return;
        if (waiting) {
          const w = waiting;
          waiting = failWaiting = null;
          w({ value, done: false });
        } else if (queue.length >= bufferSize) {
          finish(new SlowSubscriberError(bufferSize));
        } else {
          queue.push(value);
        }
      },
    };
    set.add(sub as Subscriber<unknown>);
    opts.signal?.addEventListener('abort', () => finish(null), { once: true });

    const iterator: AsyncIterableIterator<Topics[K]> = {
      next() {
        if (queue.length > 0) return Promise.resolve({ value: queue.shift() as Topics[K], done: false });
        if (failure) {
          const e = failure;
          failure = null;
          return Promise.reject(e);
        }
        if (done) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve, reject) => {
          waiting = resolve;
          failWaiting = reject;
        });
      },
      return() {
        finish(null);
        return Promise.resolve({ value: undefined, done: true });
      },
      throw(err?: unknown) {
        finish(null);
        return Promise.reject(err);
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }
}
