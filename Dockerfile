# rollcall: one image for the registry (`serve`), the config followers (`render … --watch`), the agent and `proxy`.
# Build: docker build -t rollcall .   Run: docker run -p 7400:7400 -v rollcall-data:/data rollcall

FROM node:20-slim AS build
WORKDIR /app
# better-sqlite3 downloads a prebuilt binary for linux/glibc; the toolchain is only the fallback when it cannot.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-slim
WORKDIR /app
ENV NODE_ENV=production
# nft for `rollcall proxy --mode nftables` (the node service in docker-compose.yml).
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY package.json openapi.yaml ./
# migrate.ts finds migrations/ at the package root, next to dist/.
COPY migrations ./migrations
RUN chmod +x dist/src/cli/index.js && ln -s /app/dist/src/cli/index.js /usr/local/bin/rollcall \
 && mkdir -p /data
VOLUME /data
EXPOSE 7400
ENTRYPOINT ["rollcall"]
CMD ["serve", "--host", "0.0.0.0", "--port", "7400", "--data-dir", "/data"]
