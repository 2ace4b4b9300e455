/*
 * handlers.h: the endpoint descriptors, one per file of this folder, listed in routes.c.
 */
#ifndef SSIMD_HANDLERS_H
#define SSIMD_HANDLERS_H

#include "../router.h"

extern const struct ssimd_handler ssimd_handler_ssim;    /* POST /ssim (ssim.c) */
extern const struct ssimd_handler ssimd_handler_healthz; /* GET /healthz (health.c) */
extern const struct ssimd_handler ssimd_handler_livez;   /* GET /livez (health.c) */
extern const struct ssimd_handler ssimd_handler_readyz;  /* GET /readyz (health.c) */
extern const struct ssimd_handler ssimd_handler_metrics; /* GET /metrics (metrics.c) */
extern const struct ssimd_handler ssimd_handler_version; /* GET /version (version.c) */
extern const struct ssimd_handler ssimd_handler_ui;      /* GET / (ui.c) */

#endif /* SSIMD_HANDLERS_H */
