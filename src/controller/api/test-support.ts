// The API's tests share one way to stand a controller up in-process: a memory store on a fake
// clock, a started controller and its Hono app, called with app.request() (CONVENTIONS.md item 6).
import { silentLogger } from '../../core/ports.js';
import { FakeClock } from '../../sim/fake-clock.js';
import { MemoryStore } from '../../store/memory.js';
import { controllerConfig } from '../config.js';
import { Controller } from '../controller.js';
import { createApi, type ApiOptions } from './app.js';

export const testApiToken = 'test-token-0123456789abcdef';

export interface InProcessApi {
  clock: FakeClock;
  store: MemoryStore;
  controller: Controller;
  app: ReturnType<typeof createApi>;
  close(): Promise<void>;
}

export async function startInProcessApi(options: Partial<ApiOptions> = {}): Promise<InProcessApi> {
  const clock = new FakeClock({ startMs: 1_000_000 });
  const store = new MemoryStore({ clock });
  const controller = new Controller({
    store,
    clock,
    config: controllerConfig(),
    logger: silentLogger,
    controllerId: 'c1',
    newClusterId: () => 'cluster-1',
  });
  await controller.start();
  const app = createApi(controller, { apiToken: testApiToken, keepAliveMs: 50, ...options });
  return {
    clock,
    store,
    controller,
    app,
    close: async () => {
      await controller.stop();
      await store.close();
    },
  };
}
