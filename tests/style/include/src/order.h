/* order.h - a system header before a project one. */
#ifndef ORDER_H
#define ORDER_H

#include <stddef.h>
#include "other.h"

#endif
