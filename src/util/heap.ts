// The V8 heap, set for a process that streams gigabytes through short-lived Buffers.
//
// Every chunk of a backup or restore stream is a Buffer whose bytes live outside the V8 heap
// ("external memory": TLS reads, WebSocket frames, pipe reads). V8 counts the external memory
// allocated since the last full collection against the old generation's allocation limit, which it
// sets a little above the live heap. With the server's ~20-25 MB of old generation ~30 MB of
// chunks reached it, so while data flowed V8 ran a full mark-compact every ~80 ms instead of the
// cheap young-generation scavenges that free those chunks anyway: 10 full collections a second,
// most of the server's own CPU in a backup (docs/BENCHMARKS.md). A floor under that limit
// (--initial-old-space-size) leaves the chunks to the scavenger; the live heap is not larger, and
// a heap that really grows past the floor is collected as before.
//
// The flag must be on node's command line: set at run time (v8.setFlagsFromString) it held in
// some heap states and not in others. npm start / serve / demo and the benchmarks pass it.

/** Old-generation floor, MiB (scripts/bench.sh repeats it for the benchmark process). */
const OLD_GENERATION_FLOOR_MIB = 128;

/** node's flags for the server process (before the script). */
export const SERVER_NODE_FLAGS: readonly string[] = [`--initial-old-space-size=${OLD_GENERATION_FLOOR_MIB}`];

/** Whether this process was started with SERVER_NODE_FLAGS. */
export function startedWithServerFlags(execArgv: readonly string[] = process.execArgv): boolean {
  return SERVER_NODE_FLAGS.every((f) => execArgv.includes(f));
}
