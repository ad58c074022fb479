import { defineConfig } from "vite";

// `npm run dev` serves the sources with live reload and passes the RPCs on to a running gateway (`argus up`).
const gatewayPort = process.env.ARGUS_GATEWAY_PORT ?? "8080";

export default defineConfig({
  // Relative asset URLs: the gateway may serve the console under any path prefix.
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
  },
  server: {
    proxy: {
      "^/argus\\.[a-z]+\\.v1\\.": { target: `http://127.0.0.1:${gatewayPort}`, changeOrigin: false },
    },
  },
});
