// Builds the review console into dist/, which the ingest service serves under /console/.
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/console/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Every asset as a file: the page's CSP allows no inline scripts or styles.
    assetsInlineLimit: 0,
    // Only the index's own scripts: no modulepreload polyfill injected inline.
    modulePreload: { polyfill: false },
  },
});
