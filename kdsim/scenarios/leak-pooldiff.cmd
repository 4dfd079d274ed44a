* Who leaked this tag? The advanced path: what grew between two break-ins, and which stacks hold it
!pooldiff -save before
* Let NotMyFault run on; the break-in takes another snapshot
g 0n30000
!pooldiff
!pooldiff -stacks Leak
!pooldiff -history Leak
.check myfault
