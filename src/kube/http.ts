// client-node's generated REST APIs sent over node:https (not undici: see node-compat.ts), with the
// kubeconfig's TLS and credentials from KubeConfig.applyToHTTPSOptions and the call's AbortSignal.
import http from 'node:http';
import https from 'node:https';
import { ResponseContext, wrapHttpLibrary, type HttpLibrary, type KubeConfig, type RequestContext } from '@kubernetes/client-node';

const MAX_RESPONSE = 256 << 20;

export function nodeHttpLibrary(kc: KubeConfig): HttpLibrary {
  return wrapHttpLibrary({
    async send(request: RequestContext): Promise<ResponseContext> {
      const opts: https.RequestOptions = {};
      await kc.applyToHTTPSOptions(opts);
      const url = new URL(request.getUrl());
      const body = request.getBody() as string | Buffer | undefined;
      const headers: Record<string, string | number> = { ...(opts.headers as Record<string, string> | undefined), ...request.getHeaders() };
      if (body !== undefined) headers['Content-Length'] = Buffer.byteLength(body);
      const lib = url.protocol === 'http:' ? http : https;
      const signal = request.getSignal();
      return new Promise<ResponseContext>((resolve, reject) => {
        const req = lib.request(url, { ...opts, ...(url.protocol === 'http:' ? { agent: undefined } : {}), method: request.getHttpMethod().toString(), headers, ...(signal ? { signal } : {}) }, (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE) { req.destroy(new Error(`response larger than ${MAX_RESPONSE} bytes`)); return; }
            chunks.push(c);
          });
          res.on('error', reject);
          res.on('end', () => {
            const data = Buffer.concat(chunks);
            const hdrs: Record<string, string> = {};
            for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) hdrs[k] = Array.isArray(v) ? v.join(', ') : v;
            resolve(new ResponseContext(res.statusCode ?? 0, hdrs, {
              text: async () => data.toString('utf8'),
              binary: async () => data,
              stream: () => null,
            }));
          });
        });
        req.on('error', reject);
        if (body !== undefined) req.end(body); else req.end();
      });
    },
  });
}
