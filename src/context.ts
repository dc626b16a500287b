// What every resolver receives: the services it may ask, and who is asking.
import type { OperationEngine } from './engine/operations/index.js';
import type { PubSub } from './subscriptions/pubsub.js';
import type { OperationTopics } from './subscriptions/events.js';
import type { WildStore } from './wild/store.js';

export type Role = 'admin' | 'readonly';

export interface Services {
  store: WildStore;
  engine: OperationEngine;
  pubsub: PubSub<OperationTopics>;
}

export interface GraphQLContext {
  services: Services;
  role: Role;
}
