# Common setup for the command-line tests (bats).
BINDIR=${BINDIR:-$BATS_TEST_DIRNAME/../../build/bin}
SHARED=${SHARED:-$BATS_TEST_DIRNAME/../../../shared}
PATH=$BINDIR:$PATH
DATA=$SHARED/data
FIXTURES=$SHARED/fixtures
