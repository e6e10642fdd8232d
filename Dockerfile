# rollcall: one image for the registry (`serve`), the config followers (`render … --watch`), the agent and `proxy`.
# Build: docker build -t rollcall .   Run: docker run -p 127.0.0.1:7400:7400 -v rollcall-data:/data rollcall
#
# Base: Node 24 LTS on Debian bookworm (Node 20 is end of life; better-sqlite3 12 supports 20 to 26). Pinned by full
# version tag; no digest is given because none could be verified from where this file was written: add
# `@sha256:…` from `docker buildx imagetools inspect node:24.11.1-bookworm-slim` to pin the exact bytes.
ARG NODE_IMAGE=node:24.11.1-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# better-sqlite3 downloads a prebuilt binary for linux/glibc; the toolchain is only the fallback when it cannot.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# npm ci wants every workspace's manifest (packages/client is the separately published client; not in the image).
COPY packages/client/package.json ./packages/client/
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
# The dashboard (/ui): its sources, bundled into dist/ui by the same build.
COPY ui ./ui
RUN npm run build && npm prune --omit=dev

FROM ${NODE_IMAGE} AS runtime
WORKDIR /app
ENV NODE_ENV=production
# nft for `rollcall proxy --mode nftables` (the node service in docker-compose.yml).
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/ui ./dist/ui
COPY package.json openapi.yaml ./
# migrate.ts finds migrations/ at the package root, next to dist/.
COPY migrations ./migrations
# The code stays root-owned and read-only to the process; only /data belongs to the unprivileged user.
RUN chmod +x dist/src/cli/index.js && ln -s /app/dist/src/cli/index.js /usr/local/bin/rollcall \
 && mkdir -p /data && chown node:node /data
USER node
VOLUME /data
EXPOSE 7400
# No curl in a slim image: Node's fetch asks /readyz (the database answers) on the port serve listens on.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.ROLLCALL_PORT || 7400) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["rollcall"]
CMD ["serve", "--host", "0.0.0.0", "--port", "7400", "--data-dir", "/data"]

# nginx beside rollcall, for the compose demo: the proxy runs `nginx` from this image, and its `render --watch`
# sidecar runs `nginx -t` from the same image, so the check tests the very binary and nginx.conf that will load the
# file. Debian's nginx.conf includes /etc/nginx/conf.d/*.conf; its default site is removed so only rollcall routes.
FROM runtime AS nginx
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/* \
 && rm -f /etc/nginx/sites-enabled/default
HEALTHCHECK NONE

# The default target: the registry image.
FROM runtime
