// Makes the channel a spec describes.
import type { AlertChannelSpec } from '../../../core/alerting-spec.js';
import type { AlertChannel } from './channel.js';
import { scriptChannel } from './script.js';
import { smtpChannel } from './smtp.js';
import { syslogChannel } from './syslog.js';
import { webhookChannel } from './webhook.js';

export type { AlertChannel } from './channel.js';
export { DeliveryError } from './channel.js';
export {
  signWebhook,
  verifyWebhookSignature,
  signatureHeader,
  timestampHeader,
} from './webhook.js';

export function createChannel(spec: AlertChannelSpec): AlertChannel {
  switch (spec.type) {
    case 'webhook':
      return webhookChannel(spec);
    case 'smtp':
      return smtpChannel(spec);
    case 'syslog':
      return syslogChannel(spec);
    case 'script':
      return scriptChannel(spec);
  }
}
