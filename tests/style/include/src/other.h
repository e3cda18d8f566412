/* other.h - a header of the project. */
#ifndef OTHER_H
#define OTHER_H

#endif
