
pb-x1error"t(	2
ACK_TIMEOUT	no answer