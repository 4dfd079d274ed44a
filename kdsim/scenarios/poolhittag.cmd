* Whose tag is it?: the solution, step by step
.lab
* The tags holding the most paged pool
!poolused /t5 4
* Break in at the next allocation or free of Rqst: the tag as a C constant, bytes reversed
ed nt!PoolHitTag 'tsqR'
g
* Who was allocating or freeing it
k
.check prtspool
