// Imports every domain for its side effects and builds the schema. Nothing imports this file
// except the server and the schema printer.
import { builder } from '../builder.js';
import './scalars.js';
import './errors.js';
import './node.js';
import './instance.js';
import './app.js';
import './plugins.js';
import './operation.js';
import './repository.js';
import './backup.js';
import './cluster.js';
import './restore.js';
import './lifecycle.js';
import './health.js';

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});

export const schema = builder.toSchema({ sortSchema: false });
