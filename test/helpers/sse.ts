// A minimal SSE GraphQL client over fetch (Yoga's "distinct connections" mode), for tests.
import { observe, registerSecretsFromGraphQL } from './leaks.js';

export interface SseMessage { event: string; data: string }

export async function* sseRequest(url: string, body: unknown, headers: Record<string, string>, signal?: AbortSignal): AsyncGenerator<SseMessage> {
  const req = body as { query?: unknown; variables?: unknown } | null;
  registerSecretsFromGraphQL(req?.query, req?.variables);
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
    body: JSON.stringify(body),
    signal,
  });
  if (res.status !== 200 || !res.body) throw new Error(`SSE request failed with HTTP ${res.status}`);
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
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
      observe('subscription', data.join('\n'));
      yield { event, data: data.join('\n') };
      if (event === 'complete') return;
    }
  }
}
