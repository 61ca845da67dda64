
/*
 * A minimal TAP-like checker for the C unit tests.
 */


#ifndef _UNIT_H_INCLUDED_
#define _UNIT_H_INCLUDED_


#include <stdio.h>


static int  unit_run, unit_failed;


#define UNIT_OK(cond, name)                                                  \
    do {                                                                     \
        unit_run++;                                                          \
        if (cond) {                                                          \
            printf("ok %d - %s\n", unit_run, name);                          \
        } else {                                                             \
            unit_failed++;                                                   \
            printf("not ok %d - %s (%s:%d)\n", unit_run, name,               \
                   __FILE__, __LINE__);                                      \
        }                                                                    \
    } while (0)


static int
unit_done(void)
{
    printf("1..%d\n", unit_run);

    if (unit_failed) {
        printf("# %d of %d failed\n", unit_failed, unit_run);
        return 1;
    }

    return 0;
}


#endif /* _UNIT_H_INCLUDED_ */
