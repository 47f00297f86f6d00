# A fixture firmware tree for the builder tests: kept as source on the node.
import sys

sys.path.append("/lib")
