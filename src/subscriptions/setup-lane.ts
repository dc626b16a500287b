// Subscriptions set up a few per turn of the event loop. 500 clients that subscribe to the same
// backup at once (a dashboard's worth of tabs) are ~200 ms of work; done in one go, every query
// that arrived meanwhile waits behind all of it. Taken a batch per turn, the queries read in
// between are answered first, and each subscriber's first message comes a little later instead.
export class SetupLane {
  private readonly waiting: Array<() => void> = [];
  private scheduled = false;

  /** `perTurn` set-ups start per turn of the event loop. */
  constructor(private readonly perTurn = 16) {}

  /** Resolves when this set-up may run. */
  turn(): Promise<void> {
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.release);
      }
    });
  }

  private readonly release = (): void => {
    // Resolved here, the set-ups run as microtasks right after this callback; a later batch waits
    // for the next turn, after the poll phase has read whatever sockets are ready.
    for (const resolve of this.waiting.splice(0, this.perTurn)) resolve();
    if (this.waiting.length > 0) setImmediate(this.release);
    else this.scheduled = false;
  };
}
