/*
 * routes.c: the routing table, every endpoint of the daemon in one place.
 */
#include "handlers/handlers.h"
#include "router.h"

const struct ssimd_handler *const ssimd_routes[] = {
    &ssimd_handler_ssim,    &ssimd_handler_healthz, &ssimd_handler_livez, &ssimd_handler_readyz,
    &ssimd_handler_metrics, &ssimd_handler_version, &ssimd_handler_ui,
};

const size_t ssimd_route_count = sizeof(ssimd_routes) / sizeof(ssimd_routes[0]);
