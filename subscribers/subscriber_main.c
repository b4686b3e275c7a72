/* eventshop-subscriber <name> [--replay-dead-letters]: the event-subscriber role (DESIGN.md §4,
 * subscriber_role.h). With --replay-dead-letters it re-processes the messages of
 * "<name>.deadletter" once and exits (0 when done). */
#include "es_log.h"
#include "subscriber_role.h"
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* THE table of subscribers by name: one `extern` and one line in `subscribers[]` each
 * (their .c files go to es_subscribers in subscribers/CMakeLists.txt). */
extern const sb_subscriber_t sb_order_saga;
extern const sb_subscriber_t sb_payments;
extern const sb_subscriber_t sb_notifications;
extern const sb_subscriber_t sb_shipping;

static const sb_subscriber_t *const subscribers[] = {
    &sb_order_saga, &sb_payments, &sb_notifications, &sb_shipping, NULL,
};

int main(int argc, char **argv)
{
    es_log_init("subscriber");
    bool replay = argc == 3 && strcmp(argv[2], "--replay-dead-letters") == 0;
    const sb_subscriber_t *sub = NULL;
    for (size_t i = 0; (argc == 2 || replay) && subscribers[i]; i++) {
        if (strcmp(subscribers[i]->name, argv[1]) == 0)
            sub = subscribers[i];
    }
    if (!sub) {
        fprintf(stderr, "usage: eventshop-subscriber <name> [--replay-dead-letters]   (names:");
        for (size_t i = 0; subscribers[i]; i++)
            fprintf(stderr, " %s", subscribers[i]->name);
        fprintf(stderr, ")\n");
        return 2;
    }
    return subscriber_role_run(sub, replay);
}
