// The reference receiver people write today from Kinde's guide: node:http + decodeWebhook from
// @kinde/webhooks. KINDE_DOMAIN=http://127.0.0.1:PORT BIND_PORT=3002 node receiver.mjs
import http from "node:http";
import { decodeWebhook } from "@kinde/webhooks";

const domain = process.env.KINDE_DOMAIN;
const port = Number(process.env.BIND_PORT || 3002);

http
  .createServer(async (req, res) => {
    if (req.method !== "POST" || req.url !== "/kinde/webhook") {
      res.writeHead(404).end();
      return;
    }
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const token = Buffer.concat(chunks).toString("utf8");
    const event = await decodeWebhook(token, domain);
    if (!event) {
      res.writeHead(400).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end('{"status":"ok"}');
  })
  .listen(port, "127.0.0.1");
