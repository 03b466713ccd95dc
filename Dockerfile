# Poseidon itself. Build: docker build -t poseidon .
FROM node:20-slim
# git (and ssh for deploy keys) for the git challenge source (POSEIDON_GIT_URL).
RUN apt-get update && apt-get install -y --no-install-recommends git openssh-client ca-certificates && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY schemas ./schemas
COPY challenges ./challenges
# One ESM file (esbuild, which tsx brings): no TypeScript compiled at start, ~30 MB less memory
# per process than running the sources through tsx (README: Launch speed and tuning).
RUN npm run build
ENV POSEIDON_HOST=0.0.0.0
EXPOSE 8080
# Young generation capped at 2 MB semi-spaces (V8 grows them to 16 MB under allocation bursts such
# as a resync over 10,000 records): peak RSS ~160 -> ~135 MB, API throughput the same (README).
# The tests and benches run this exact line (spec/helpers/server.ts imageCommand).
ENTRYPOINT ["node", "--max-semi-space-size=2", "dist/poseidon.mjs"]
CMD ["serve"]
