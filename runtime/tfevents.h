/* TensorBoard's event files: records of TFRecord framing (length, masked CRC-32C of the length,
 * data, masked CRC-32C of the data) holding Event protocol buffers. The first record names the
 * file version; each later one is a step's scalars (Summary values with a tag and a float),
 * which TensorBoard, `wandb sync --sync-tensorboard` and tf.data read as they are written. */
#pragma once
#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *fp;
    uint8_t *buf; /* the Event being built */
    size_t n, cap;
    int values; /* scalars in it */
} TfEvents;

/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of n bytes; "123456789" gives
 * 0xE3069283. */
uint32_t tfevents_crc32c(const void *data, size_t n);

/* Starts an event file on fp (opened for writing or appending, which the caller closes):
 * writes the version record when fresh is 1. */
void tfevents_init(TfEvents *t, FILE *fp, int fresh);
/* Adds scalar `tag` = v to the step's event (started by the first add after a write). */
void tfevents_add(TfEvents *t, const char *tag, double v);
/* Writes the event of the added scalars (if any) at step and wall_time (Unix seconds), and
 * flushes it to the file, so that a reader sees each step as it ends. 0, or -1 when the
 * write failed. */
int tfevents_write(TfEvents *t, long long step, double wall_time);
void tfevents_free(TfEvents *t);
