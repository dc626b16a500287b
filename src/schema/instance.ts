// Instances of the Wild Central data directory.
import { builder } from '../builder.js';
import type { FileProblem, InstanceInfo } from '../wild/store.js';
import { NodeInterface, encodeGlobalId, nodeLoaders } from './node.js';

export const ConfigProblemRef = builder.objectRef<FileProblem>('ConfigProblem').implement({
  description: 'Something wrong with a file of the data directory: which file, where in it, and what.',
  fields: (t) => ({
    file: t.exposeString('file'),
    path: t.exposeString('path'),
    message: t.exposeString('message'),
  }),
});

export const InstanceRef = builder.objectRef<InstanceInfo>('Instance');

InstanceRef.implement({
  interfaces: [NodeInterface],
  isTypeOf: (v) => typeof v === 'object' && v !== null && 'kubeconfigPath' in v,
  fields: (t) => ({
    id: t.id({ resolve: (i) => encodeGlobalId('Instance', i.name) }),
    name: t.exposeString('name'),
    problems: t.field({
      type: [ConfigProblemRef],
      description: 'What is wrong with this instance\'s files (empty when all is well).',
      resolve: (i) => i.problems,
    }),
    hasKubeconfig: t.exposeBoolean('hasKubeconfig'),
  }),
});

nodeLoaders.set('Instance', (key, ctx) => ctx.services.store.instance(key).catch(() => null));

builder.queryFields((t) => ({
  instances: t.field({
    type: [InstanceRef],
    resolve: (_r, _a, ctx) => ctx.services.store.instances(),
  }),
  instance: t.field({
    type: InstanceRef,
    nullable: true,
    args: { name: t.arg.string({ required: true }) },
    resolve: (_r, { name }, ctx) => ctx.services.store.instance(name),
  }),
}));
