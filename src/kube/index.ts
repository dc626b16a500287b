// Kubernetes access for Wild Backup: the public face of src/kube (see docs/design/kube-sim.md).
export { KubeClient, kubeClientFor, clusterVersion, type CallOptions, type ClusterStatus, type ExecProtocol } from './client.js';
export {
  KubeError, KubeconfigError, ClusterUnreachableError, KubeApiError, KubeNotFoundError, PodNotFoundError, PodNotRunningError,
  CommandFailedError, ConnectionLostError, KubeAbortedError, KubeTimeoutError, ExecUsageError,
} from './errors.js';
export {
  listPods, findReadyPod, listPvcs, findPvcMount, listVolumes, readSecret, readSecretKey, listNamespaces, namespaceExists, parseQuantity, mountOf,
  type PodInfo, type PvcInfo, type PvcMount, type VolumeInfo,
} from './discovery.js';
export { listWorkloads, scaleWorkload, waitForReplicas, scaleAndWait, type WorkloadInfo, type WorkloadKind, type WaitOptions } from './workloads.js';
export {
  createHelperPod, waitForHelperPod, deleteHelperPod, withHelperPod, deleteOrphanHelperPods, setHelperPodOwner, helperPodOwner,
  DEFAULT_HELPER_IMAGE, HELPER_LABEL, HELPER_SERVER_LABEL, HELPER_RUN_LABEL, type HelperPod, type HelperPodOptions, type HelperPodOwner,
} from './helper-pod.js';
export { Kubeconfig } from './kubeconfig.js';
export { EXEC_STDERR_LIMIT, execStream, execText, openExecSockets, type ExecOptions, type ExecStream, type ExecResult, type ExecTextOptions } from './exec.js';
