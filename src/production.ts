// Imported first by the CLI entry: the server runs as production code. graphql-js reads NODE_ENV
// once, when it loads: outside production its `instanceOf` (every isObjectType/isListType... check
// of every field it completes) does a slow cross-realm check, 2 % of the server's CPU under load.
// An explicit NODE_ENV (e.g. development) is kept.
process.env.NODE_ENV ??= 'production';
