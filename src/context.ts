// What every resolver receives: the services it may ask, and who is asking.
import type { OperationEngine } from './engine/operations/index.js';
import type { RepositoryService } from './engine/repository/service.js';
import type { BackupService } from './engine/backup/service.js';
import type { ClusterService } from './engine/cluster.js';
import type { RestoreService } from './engine/restore/service.js';
import type { MaintenanceService } from './engine/lifecycle/maintenance.js';
import type { ScheduleService } from './engine/lifecycle/schedules.js';
import type { PubSub } from './subscriptions/pubsub.js';
import type { OperationTopics } from './subscriptions/events.js';
import type { WildStore } from './wild/store.js';

export type Role = 'admin' | 'readonly';

export interface Services {
  store: WildStore;
  engine: OperationEngine;
  repositories: RepositoryService;
  backups: BackupService;
  cluster: ClusterService;
  restores: RestoreService;
  maintenance: MaintenanceService;
  schedules: ScheduleService;
  pubsub: PubSub<OperationTopics>;
}

export interface GraphQLContext {
  services: Services;
  role: Role;
}
