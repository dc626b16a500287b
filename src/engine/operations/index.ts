// Public face of the operation engine.
export { OperationEngine, CancelReason, type EngineOptions } from './engine.js';
export { isOperationId } from './store.js';
export * from './types.js';
