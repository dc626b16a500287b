// Typed failures of Kubernetes access. Callers branch on the class, never on message text;
// messages name the object and never carry secret values (argv and env never hold secrets).
import { WildError } from '../errors.js';

// Expected failures (a cluster that does not answer, a pod that is gone): domain errors, so a
// query that meets one answers its message and code rather than a masked "Unexpected error".
export abstract class KubeError extends WildError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The API server cannot be reached (refused, DNS, TLS, or no answer within the timeout). */
export class ClusterUnreachableError extends KubeError {
  readonly code = 'CLUSTER_UNREACHABLE';
  constructor(readonly server: string, detail: string, options?: { cause?: unknown }) {
    super(`cluster at ${server} is unreachable: ${detail}`, options);
  }
}

/** The kubeconfig cannot be read or uses what src/kube does not support (exec/auth-provider users, proxy-url). */
export class KubeconfigError extends KubeError {
  readonly code = 'KUBECONFIG_INVALID';
  constructor(readonly file: string, detail: string) {
    super(`kubeconfig ${file}: ${detail}`);
  }
}

/** The API server answered with an error Status (401, 403, 409, 422, ...). */
export class KubeApiError extends KubeError {
  readonly code = 'KUBE_API_ERROR';
  constructor(readonly status: number, readonly reason: string, message: string) {
    super(message);
  }
}

/** A named object does not exist (404 from the API server). */
export class KubeNotFoundError extends KubeError {
  readonly code = 'NOT_FOUND';
  constructor(readonly kind: string, readonly namespace: string | undefined, readonly objectName: string) {
    super(`${kind} ${namespace ? `${namespace}/` : ''}${objectName} not found`);
  }
}

/** Exec target pod does not exist. */
export class PodNotFoundError extends KubeError {
  readonly code = 'POD_NOT_FOUND';
  constructor(readonly namespace: string, readonly pod: string) {
    super(`pod ${namespace}/${pod} not found`);
  }
}

/** The pod exists but cannot run a command (pending, terminating, completed, wrong container). */
export class PodNotRunningError extends KubeError {
  readonly code = 'POD_NOT_RUNNING';
  constructor(readonly namespace: string, readonly pod: string, detail: string) {
    super(`cannot exec in pod ${namespace}/${pod}: ${detail}`);
  }
}

/** The command ran and failed: exit code (null when it could not start) and the tail of its stderr. */
export class CommandFailedError extends KubeError {
  readonly code = 'COMMAND_FAILED';
  constructor(
    readonly program: string,
    readonly exitCode: number | null,
    readonly stderrTail: string,
    readonly where: string,
    detail?: string,
    /** What the failure means, when the caller could tell (ExecOptions.explainFailure). */
    explanation?: string,
  ) {
    const tail = stderrTail.trim().split('\n').slice(-3).join(' | ').slice(-400);
    super(`${explanation ? `${explanation}; ` : ''}${program} in ${where} ${exitCode === null ? `could not run: ${detail ?? 'unknown error'}` : `exited with code ${exitCode}`}${tail ? `: ${tail}` : ''}`);
  }
}

/** The exec stream broke before the command's status arrived (pod deleted, node or network gone). */
export class ConnectionLostError extends KubeError {
  readonly code = 'CONNECTION_LOST';
  constructor(readonly where: string, detail: string, options?: { cause?: unknown }) {
    super(`exec stream to ${where} lost: ${detail}`, options);
  }
}

/** The caller's AbortSignal fired. */
export class KubeAbortedError extends KubeError {
  readonly code = 'ABORTED';
  constructor(what: string, reason?: unknown) {
    super(`${what} was cancelled${reason instanceof Error ? `: ${reason.message}` : ''}`, { cause: reason });
  }
}

/** Waiting for pods (helper pod running, workload scaled) took longer than allowed. */
export class KubeTimeoutError extends KubeError {
  readonly code = 'TIMEOUT';
}

/** The request cannot be carried out as asked (e.g. stdin of unknown length on a v4-only server). */
export class ExecUsageError extends KubeError {
  readonly code = 'EXEC_USAGE';
}
