// A task kind that exists only in the tests: it reports progress in steps and honours cancel.
import type { OperationKind, OperationTask, TaskContext } from '../../src/engine/operations/index.js';

export interface TickOptions {
  instance?: string;
  app?: string;
  kind?: OperationKind;
  steps?: number;
  stepMs?: number;
  bytesPerStep?: number;
  fail?: Error;
  exclusive?: boolean;
  onAppConflict?: 'reject' | 'queue';
  /** Other apps the task holds (OperationTask.alsoHolds). */
  alsoHolds?: OperationTask['alsoHolds'];
  /** The task stops its app (OperationTask.stopsApp). */
  stopsApp?: boolean;
  /** The backup the task reads or deletes (OperationTask.backup). */
  backup?: string;
  /** Resolves when the test lets the task finish (used to hold a task RUNNING). */
  gate?: Promise<void>;
  onStart?: (ctx: TaskContext) => void;
}

export function tickTask(o: TickOptions = {}): OperationTask {
  const steps = o.steps ?? 5;
  const bytesPerStep = o.bytesPerStep ?? 1000;
  return {
    kind: o.kind ?? 'CHECK_REPOSITORY',
    instance: o.instance ?? 'home',
    app: o.app,
    exclusive: o.exclusive,
    onAppConflict: o.onAppConflict,
    ...(o.backup !== undefined ? { backup: o.backup } : {}),
    ...(o.alsoHolds ? { alsoHolds: o.alsoHolds } : {}),
    ...(o.stopsApp ? { stopsApp: true } : {}),
    async run(ctx) {
      o.onStart?.(ctx);
      ctx.progress({ phase: 'ticking', bytesTotal: steps * bytesPerStep, bytesDone: 0 });
      for (let i = 1; i <= steps; i++) {
        await new Promise<void>((resolve, reject) => {
          if (ctx.signal.aborted) return reject(ctx.signal.reason);
          const t = setTimeout(resolve, o.stepMs ?? 10);
          ctx.signal.addEventListener('abort', () => { clearTimeout(t); reject(ctx.signal.reason); }, { once: true });
        });
        ctx.progress({ bytesDone: i * bytesPerStep, currentItem: `step ${i}` });
        ctx.log(`step ${i} of ${steps}`);
      }
      if (o.gate) {
        await new Promise<void>((resolve, reject) => {
          void o.gate!.then(resolve);
          if (ctx.signal.aborted) reject(ctx.signal.reason);
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
        });
      }
      if (o.fail) throw o.fail;
      return { message: `ticked ${steps} times` };
    },
  };
}
