// Server-sent events parsed out of a response body, with nothing else attached: the tests' SSE
// client (sse.ts) and the benchmarks' server client (bench/lib-server.ts) both read them.

export interface SseMessage { event: string; data: string }

/** The body's messages, keep-alive comments left out, until a `complete` event (included). */
export async function* sseMessages(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      if (data.length === 0 && event === 'message') continue; // keep-alive comment
      yield { event, data: data.join('\n') };
      if (event === 'complete') return;
    }
  }
}
