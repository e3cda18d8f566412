/* caps.h - every hard cap on a buffer or a count of the gateway, named in one
 * place (curl's dynbuf "toobig" limits). A buffer is given its cap at
 * buf_init; going over it is an error that the caller handles (util.h).
 *
 * Caps that a user may change are config keys (config.h holds their
 * defaults); what is here is fixed at build time.
 */
#ifndef SLUICE_CAPS_H
#define SLUICE_CAPS_H

/* Content blocks of one streamed Anthropic answer that the stream's
 * translation tracks (provider_anthropic.c): a block index beyond it makes
 * the stream malformed. */
#define ANTHROPIC_STREAM_BLOCKS_MAX 4096

#endif
